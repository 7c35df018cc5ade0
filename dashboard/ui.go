package dashboard

import (
	"embed"
	"encoding/base64"
	"encoding/json"
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/switchboard-gw/switchboard/governance"
)

//go:embed ui
var uiFiles embed.FS

// cookieName holds the key after /ui/login. The value is the raw key,
// base64url-encoded so any configured admin key is a valid cookie value;
// HttpOnly keeps it from page scripts and SameSite=Strict from other sites.
const cookieName = "switchboard_key"

// contentSecurityPolicy allows only the embedded assets: no inline script,
// no remote origin (nothing outside is reachable anyway).
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func uiHeaders(c *fiber.Ctx) {
	c.Set("Content-Security-Policy", contentSecurityPolicy)
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	c.Set(fiber.HeaderXFrameOptions, "DENY")
}

func (d *Dashboard) page(c *fiber.Ctx) error {
	b, err := uiFiles.ReadFile("ui/index.html")
	if err != nil {
		return sendError(c, err)
	}
	uiHeaders(c)
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Type("html", "utf-8")
	return c.Send(b)
}

func (d *Dashboard) asset(c *fiber.Ctx) error {
	name := c.Params("name")
	// Only plain file names under ui/ are served; embed.FS refuses ".." too,
	// this keeps index.html and directories out as well.
	if strings.ContainsAny(name, "/\\") || name == "index.html" || strings.HasPrefix(name, ".") {
		return c.SendStatus(http.StatusNotFound)
	}
	b, err := uiFiles.ReadFile("ui/" + name)
	if err != nil {
		return c.SendStatus(http.StatusNotFound)
	}
	uiHeaders(c)
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set(fiber.HeaderContentType, mime.TypeByExtension(path.Ext(name)))
	return c.Send(b)
}

// sessionView describes the logged-in principal; never the key.
type sessionView struct {
	Authenticated bool   `json:"authenticated"`
	KeyID         string `json:"key_id"`
	KeyName       string `json:"key_name,omitempty"`
	Team          string `json:"team,omitempty"`
	Org           string `json:"org,omitempty"`
	Admin         bool   `json:"admin"`
	Error         string `json:"error,omitempty"` // why a key was refused, e.g. expired
}

// session answers GET /ui/session with who the cookie (or header) belongs
// to; without a valid key it says so with a 200, so the page can show its
// login form without a failed request.
func (d *Dashboard) session(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	raw := governance.KeyFromHeaders(c.Get(fiber.HeaderAuthorization), c.Get("x-api-key"))
	if raw == "" {
		raw = keyFromCookie(c)
	}
	if raw == "" {
		return c.JSON(sessionView{})
	}
	p, err := d.gov.Authenticate(raw)
	if err != nil {
		return c.JSON(sessionView{Error: err.Error()})
	}
	return c.JSON(viewSession(p))
}

func viewSession(p *governance.Principal) sessionView {
	return sessionView{Authenticated: true, KeyID: p.KeyID, KeyName: p.KeyName, Team: p.Team, Org: p.Org, Admin: p.Admin}
}

// login answers POST /ui/login with {"key": "..."} (or a form field key):
// a valid key is stored in the HttpOnly cookie the API also accepts.
func (d *Dashboard) login(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "no-store")
	if !d.sameOrigin(c) {
		return sendError(c, errForbidden("login must come from the dashboard's own origin"))
	}
	var raw string
	if strings.HasPrefix(c.Get(fiber.HeaderContentType), fiber.MIMEApplicationJSON) {
		var in struct {
			Key string `json:"key"`
		}
		if err := json.Unmarshal(c.Body(), &in); err != nil {
			return sendError(c, errBadRequest("body: want {\"key\": \"...\"}"))
		}
		raw = in.Key
	} else {
		raw = c.FormValue("key")
	}
	raw = strings.TrimSpace(raw)
	p, err := d.gov.Authenticate(raw)
	if err != nil {
		d.denied(c, err)
		return sendError(c, &apiError{status: http.StatusUnauthorized, typ: "authentication_error", msg: err.Error()})
	}
	c.Cookie(&fiber.Cookie{
		Name: cookieName, Value: base64.RawURLEncoding.EncodeToString([]byte(raw)), Path: "/",
		HTTPOnly: true, SameSite: fiber.CookieSameSiteStrictMode, Secure: d.secure(c),
	})
	d.log.Info("dashboard login", "key_id", p.KeyID, "admin", p.Admin, governance.LogRequestID(c.Context()))
	return c.JSON(viewSession(p))
}

func (d *Dashboard) logout(c *fiber.Ctx) error {
	c.Cookie(&fiber.Cookie{
		Name: cookieName, Value: "", Path: "/", MaxAge: -1,
		HTTPOnly: true, SameSite: fiber.CookieSameSiteStrictMode, Secure: d.secure(c),
	})
	return c.SendStatus(http.StatusNoContent)
}

// sameOrigin refuses a login posted by another site's page (login CSRF);
// clients that send no Origin (curl, scripts) are not browsers and pass.
func (d *Dashboard) sameOrigin(c *fiber.Ctx) bool {
	o := c.Get(fiber.HeaderOrigin)
	return o == "" || o == c.BaseURL() || o == d.publicOrigin && o != ""
}

// secure tells whether the session cookie must be Secure: the request came
// over TLS, or browsers reach the gateway over https through a proxy (the
// cookie holds a key, which must not travel in clear text on a later http
// request to the same host).
func (d *Dashboard) secure(c *fiber.Ctx) bool {
	return c.Protocol() == "https" || strings.HasPrefix(d.publicOrigin, "https://")
}

func keyFromCookie(c *fiber.Ctx) string {
	v := c.Cookies(cookieName)
	if v == "" {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return ""
	}
	return string(b)
}
