package dashboard

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
)

// loginCookie logs in with key and returns the cookie the answer sets.
func loginCookie(t *testing.T, f *fixture, key string) *http.Cookie {
	t.Helper()
	resp := f.do(t, http.MethodPost, "/ui/login", "", strings.NewReader(`{"key":"`+key+`"}`),
		map[string]string{"Content-Type": "application/json"})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login: status %d", resp.StatusCode)
	}
	for _, c := range resp.Cookies() {
		if c.Name == cookieName {
			return c
		}
	}
	t.Fatalf("login set no %s cookie", cookieName)
	return nil
}

func TestLoginCookieIsHttpOnlyStrictAndAuthenticatesTheAPI(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct {
		name, key string
		team      string // the team the session and spend are scoped to
		total     int64
	}{
		{"admin", adminKey, "", 3_002_234_580},
		{"team key", alphaKey, "alpha", costAlphaLLM + costAlphaTool},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := loginCookie(t, f, tc.key)
			if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
				t.Errorf("cookie = %+v, want HttpOnly, SameSite=Strict, Path=/", c)
			}
			if strings.Contains(c.Value, tc.key) {
				t.Error("cookie holds the key in clear text")
			}
			cookie := map[string]string{"Cookie": c.Name + "=" + c.Value}
			var s sessionView
			resp := f.do(t, http.MethodGet, "/ui/session", "", nil, cookie)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("session: status %d", resp.StatusCode)
			}
			decode(t, resp, &s)
			if !s.Authenticated || s.Team != tc.team || s.Admin != (tc.key == adminKey) {
				t.Errorf("session = %+v", s)
			}
			var r spendResponse
			resp = f.do(t, http.MethodGet, "/admin/spend", "", nil, cookie)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("spend with cookie: status %d", resp.StatusCode)
			}
			decode(t, resp, &r)
			if r.Total.CostNanoUSD != tc.total || r.Team != tc.team {
				t.Errorf("spend with cookie = %d for team %q, want %d for %q", r.Total.CostNanoUSD, r.Team, tc.total, tc.team)
			}
		})
	}
}

func TestLoginRefusals(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const wrong = "sk-sb-definitely-not-a-key-0123456789"
	tests := []struct {
		name, body, ctype string
		hdr               map[string]string
		status            int
	}{
		{"wrong key", `{"key":"` + wrong + `"}`, "application/json", nil, http.StatusUnauthorized},
		{"empty key", `{"key":""}`, "application/json", nil, http.StatusUnauthorized},
		{"broken JSON", `{"key":`, "application/json", nil, http.StatusBadRequest},
		{"form login works", "key=" + alphaKey, "application/x-www-form-urlencoded", nil, http.StatusOK},
		{"cross-site origin", `{"key":"` + alphaKey + `"}`, "application/json",
			map[string]string{"Origin": "http://evil.example"}, http.StatusForbidden},
		{"same origin", `{"key":"` + alphaKey + `"}`, "application/json",
			map[string]string{"Origin": "http://example.com"}, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			hdr := map[string]string{"Content-Type": tc.ctype}
			for k, v := range tc.hdr {
				hdr[k] = v
			}
			resp := f.do(t, http.MethodPost, "/ui/login", "", strings.NewReader(tc.body), hdr)
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
			if strings.Contains(string(b), wrong) || strings.Contains(string(b), alphaKey) {
				t.Errorf("answer echoes the key: %s", b)
			}
			if tc.status != http.StatusOK && len(resp.Cookies()) > 0 {
				t.Errorf("refused login set a cookie: %v", resp.Cookies())
			}
		})
	}
}

func TestLogoutExpiresTheCookie(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	resp := f.do(t, http.MethodPost, "/ui/logout", "", nil, nil)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: status %d", resp.StatusCode)
	}
	cs := resp.Cookies()
	if len(cs) != 1 || cs[0].Name != cookieName || cs[0].Value != "" || cs[0].MaxAge >= 0 {
		t.Errorf("logout cookies = %+v, want %s expired", cs, cookieName)
	}
	for _, cookie := range []string{cookieName + "=%%%", cookieName + "=c2stc2Itbm9wZQ"} {
		resp = f.do(t, http.MethodGet, "/ui/session", "", nil, map[string]string{"Cookie": cookie})
		var s sessionView
		decode(t, resp, &s)
		if resp.StatusCode != http.StatusOK || s.Authenticated || s.KeyID != "" {
			t.Errorf("session with cookie %s: status %d, %+v; want 200 and not authenticated", cookie, resp.StatusCode, s)
		}
		resp = f.do(t, http.MethodGet, "/admin/spend", "", nil, map[string]string{"Cookie": cookie})
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("spend with cookie %s: status %d, want 401", cookie, resp.StatusCode)
		}
	}
}

func TestUIAssetsAreEmbeddedAndLockedDown(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct {
		target, ctype, contains string
		status                  int
	}{
		{"/ui", "text/html", `<script src="/ui/assets/app.js"`, http.StatusOK},
		{"/ui/", "text/html", `id="login-form"`, http.StatusOK},
		{"/ui/assets/app.js", "javascript", "/admin/spend", http.StatusOK},
		{"/ui/assets/app.css", "text/css", "#waterfall", http.StatusOK},
		{"/ui/assets/index.html", "", "", http.StatusNotFound},
		{"/ui/assets/missing.js", "", "", http.StatusNotFound},
		{"/ui/assets/..%2fdashboard.go", "", "", http.StatusNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.target, func(t *testing.T) {
			t.Parallel()
			resp := f.do(t, http.MethodGet, tc.target, "", nil, nil)
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if tc.status != http.StatusOK {
				return
			}
			if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, tc.ctype) {
				t.Errorf("Content-Type %q, want %s", ct, tc.ctype)
			}
			if !strings.Contains(string(b), tc.contains) {
				t.Errorf("body lacks %q", tc.contains)
			}
			csp := resp.Header.Get("Content-Security-Policy")
			if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "http") {
				t.Errorf("Content-Security-Policy %q", csp)
			}
			if strings.Contains(string(b), "://") && !strings.Contains(string(b), "http://www.w3.org/2000/svg") {
				t.Errorf("asset refers to another origin")
			}
		})
	}
}

func TestMoneyIsExact(t *testing.T) {
	t.Parallel()
	format := []struct {
		nano int64
		want string
	}{
		{0, "0"}, {1, "0.000000001"}, {1_000_000_000, "1"}, {1_234_567, "0.001234567"},
		{3_000_000_001, "3.000000001"}, {-1_500_000_000, "-1.5"}, {9_223_372_036_854_775_807, "9223372036.854775807"},
	}
	for _, tc := range format {
		if got := formatUSD(tc.nano); got != tc.want {
			t.Errorf("formatUSD(%d) = %q, want %q", tc.nano, got, tc.want)
		}
	}
	parse := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0.1", 100_000_000, true}, {"0.000000001", 1, true}, {"12.5", 12_500_000_000, true},
		{"0.0000000001", 0, false}, {"abc", 0, false}, {"1e30", 0, false}, {"1e-9", 1, true},
	}
	for _, tc := range parse {
		got, err := parseUSD(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseUSD(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// Behind a TLS-terminating proxy the gateway sees plain http; server.public_url
// says browsers use https, so the cookie, which holds a key, is Secure, and a
// login from that origin is the dashboard's own.
func TestLoginBehindAnHTTPSPublicURL(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tests := []struct {
		name, publicURL, origin string
		status                  int
		secure                  bool
	}{
		{"no public url", "", "", http.StatusOK, false},
		{"https public url", "https://gw.example.com/", "", http.StatusOK, true},
		{"login from the public origin", "https://gw.example.com", "https://gw.example.com", http.StatusOK, true},
		{"login from another origin", "https://gw.example.com", "https://evil.example", http.StatusForbidden, false},
		{"http public url", "http://gw.example.com", "http://gw.example.com", http.StatusOK, false},
		{"public url as written, origin as browsers send it", "HTTPS://GW.Example.com:443/ui", "https://gw.example.com", http.StatusOK, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			app := fiber.New(fiber.Config{DisableStartupMessage: true})
			New(Deps{Store: f.store, Governor: f.gov, PublicURL: tc.publicURL}).Register(app)
			req := httptest.NewRequest(http.MethodPost, "/ui/login", strings.NewReader(`{"key":"`+alphaKey+`"}`))
			req.Header.Set("Content-Type", "application/json")
			if tc.origin != "" {
				req.Header.Set("Origin", tc.origin)
			}
			resp, err := app.Test(req, 5000)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("login: status %d, want %d", resp.StatusCode, tc.status)
			}
			var secure, set bool
			for _, c := range resp.Cookies() {
				if c.Name == cookieName {
					set, secure = true, c.Secure
				}
			}
			if set != (tc.status == http.StatusOK) || secure != tc.secure {
				t.Fatalf("cookie set %v secure %v, want set %v secure %v", set, secure, tc.status == http.StatusOK, tc.secure)
			}
		})
	}
}
