package governance

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// maxUpstreamRedirects is net/http's own default cap.
const maxUpstreamRedirects = 10

// SameOriginRedirect is the CheckRedirect of every net/http client that
// carries an upstream's configured credentials. Those credentials are set on
// each request (a transport adds them, or the client copies them to the
// redirected request: net/http drops only Authorization and Cookie on a move
// to another host, never an X-Api-Key), so following a redirect to another
// origin would hand them, and a POST's body, to a host the operator never
// configured. A redirect within the origin (a moved path) is still followed.
func SameOriginRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxUpstreamRedirects {
		return fmt.Errorf("stopped after %d redirects", maxUpstreamRedirects)
	}
	from, to := via[0].URL, req.URL
	if !strings.EqualFold(from.Scheme, to.Scheme) || !strings.EqualFold(from.Host, to.Host) {
		// Scheme and host only: the target's path or query may hold a token.
		return fmt.Errorf("%w: to %s://%s", ErrCrossOriginRedirect, to.Scheme, to.Host)
	}
	return nil
}

// ErrCrossOriginRedirect is what an upstream client's call returns (wrapped
// in a *url.Error) when the upstream redirects it to another origin.
var ErrCrossOriginRedirect = errors.New("upstream redirected to another origin; not followed, it would carry the upstream's credentials")
