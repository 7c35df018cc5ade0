package governance_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/switchboard-gw/switchboard/governance"
)

// An upstream client follows redirects on the origin it was configured with
// and stops, with ErrCrossOriginRedirect, at one to any other scheme, host or
// port; its error names that origin but not the path or query, which may
// hold a token.
func TestSameOriginRedirect(t *testing.T) {
	t.Parallel()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the other origin got %s %s with Authorization %q", r.Method, r.URL, r.Header.Get("Authorization"))
	}))
	t.Cleanup(other.Close)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/moved":
			http.Redirect(w, r, "/here", http.StatusTemporaryRedirect)
		case "/away":
			http.Redirect(w, r, other.URL+"/steal?token=secret-in-query", http.StatusTemporaryRedirect)
		case "/upper":
			http.Redirect(w, r, "http://"+strings.ToUpper(r.Host)+"/here", http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	}))
	t.Cleanup(srv.Close)
	hc := &http.Client{CheckRedirect: governance.SameOriginRedirect}
	for _, tc := range []struct {
		path  string
		cross bool
		fails bool
	}{
		{path: "/moved"},
		{path: "/upper"},
		{path: "/away", cross: true, fails: true},
		{path: "/loop", fails: true},
	} {
		t.Run(tc.path, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+tc.path, strings.NewReader("{}"))
			req.Header.Set("Authorization", "Bearer upstream-secret")
			resp, err := hc.Do(req)
			if err == nil {
				_ = resp.Body.Close()
			}
			if (err != nil) != tc.fails || errors.Is(err, governance.ErrCrossOriginRedirect) != tc.cross {
				t.Fatalf("err = %v, want failure %v, cross-origin %v", err, tc.fails, tc.cross)
			}
			if err == nil && resp.StatusCode != http.StatusNoContent {
				t.Errorf("status %d, want the redirect followed to 204", resp.StatusCode)
			}
			// net/http's *url.Error around it quotes the URL; the cause itself must not.
			var ue *url.Error
			if errors.As(err, &ue) && strings.Contains(ue.Err.Error(), "secret-in-query") {
				t.Errorf("error quotes the target's query: %v", ue.Err)
			}
		})
	}
}
