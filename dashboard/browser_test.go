package dashboard

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBrowserDashboard drives /ui in headless Chromium through ui_test.mjs.
// It needs Debian's chromium, node and npm's playwright-core, found through
// NODE_PATH (or PLAYWRIGHT_NODE_MODULES, the node_modules folder of
// `npm install --prefix DIR playwright-core`), and skips without them.
// Screenshots go to SWITCHBOARD_UI_SCREENSHOTS, by default the git-ignored
// dashboard/screenshots.
func TestBrowserDashboard(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("browser test skipped: no chromium at %s (apt-get install -y chromium)", chromium)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("browser test skipped: node not found")
	}
	nodePath := os.Getenv("NODE_PATH")
	if dir := os.Getenv("PLAYWRIGHT_NODE_MODULES"); dir != "" {
		nodePath = dir + string(os.PathListSeparator) + nodePath
	}
	env := append(os.Environ(), "NODE_PATH="+nodePath)
	probe := exec.Command(node, "-e", "require.resolve('playwright-core')")
	probe.Env = env
	if out, err := probe.CombinedOutput(); err != nil {
		t.Skipf("browser test skipped: playwright-core not found through NODE_PATH "+
			"(npm install --prefix DIR playwright-core; PLAYWRIGHT_NODE_MODULES=DIR/node_modules): %v: %s", err, firstLine(out))
	}
	shots := os.Getenv("SWITCHBOARD_UI_SCREENSHOTS")
	if shots == "" {
		shots = "screenshots"
	}
	if shots, err = filepath.Abs(shots); err != nil {
		t.Fatal(err)
	}

	f := newFixtureAt(t, time.Now().UTC())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = f.app.Listener(ln) }()
	t.Cleanup(func() { _ = f.app.ShutdownWithTimeout(5 * time.Second) })

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "ui_test.mjs")
	cmd.Env = append(env,
		"BASE_URL=http://"+ln.Addr().String(),
		"ADMIN_KEY="+adminKey,
		"TEAM_KEY="+alphaKey,
		"TEAM=alpha",
		"TRACE_ID="+tid(1).String(),
		"SCREENSHOT_DIR="+shots,
		"CHROMIUM="+chromium,
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ui_test.mjs: %v\n%s", err, out)
	}
	t.Logf("ui_test.mjs: %s; screenshots in %s", strings.TrimSpace(string(out)), shots)
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}
