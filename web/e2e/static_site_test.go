//go:build e2e

package e2e

import (
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"reword/web/staticsite"
)

// staticSite is the editor as `make static` writes it, served by a plain
// file server on one loopback port, talking to its own bin/reword serve on
// another: two origins, as with a front end on Vercel and the backend
// elsewhere.
type staticSite struct {
	// URL is the file server's origin, which the backend allows.
	URL string
	// WebSocketURL is the backend's, written into the site at build time.
	WebSocketURL string
	// BackendURL is the backend's HTTP origin (uploads, images).
	BackendURL string

	backend     *server
	backendArgs []string
}

// startStaticSite generates the site into a temporary folder and starts
// the file server and the backend; both stop when the test ends.
func startStaticSite(t *testing.T) *staticSite {
	t.Helper()
	// The file server's port first: the backend must be started with the
	// site's origin in --allow-origins.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	site := &staticSite{URL: "http://" + ln.Addr().String()}

	// A fixed backend address, so that a restarted backend is found where
	// the site's build put it (the reconnection test restarts it).
	addr := freeLoopbackAddr(t)
	site.WebSocketURL = "ws://" + addr + "/ws"
	site.BackendURL = "http://" + addr
	// startServer passes --addr 127.0.0.1:0; a later --addr wins.
	site.backendArgs = []string{"--addr", addr, "--allow-origins", site.URL, "--data", t.TempDir()}
	site.restartBackend(t)
	t.Cleanup(func() { site.stopBackend(t) })

	out := filepath.Join(t.TempDir(), "static")
	must(t, staticsite.Generate(staticsite.Config{
		Out:          out,
		WasmDir:      filepath.Join(filepath.Dir(os.Getenv("REWORD_BIN")), "web"),
		WebSocketURL: site.WebSocketURL,
		Version:      "e2e-static",
	}))
	files := &http.Server{Handler: http.FileServer(http.Dir(out))}
	go files.Serve(ln)
	t.Cleanup(func() { files.Close() })
	return site
}

// restartBackend starts the site's backend (again) on its fixed address.
func (s *staticSite) restartBackend(t *testing.T) {
	t.Helper()
	b, err := startServer(s.backendArgs...)
	if err != nil {
		t.Fatalf("starting the static site's backend: %v", err)
	}
	s.backend = b
}

// stopBackend stops the backend if it runs; a failing test shows its log.
func (s *staticSite) stopBackend(t *testing.T) {
	t.Helper()
	if s.backend == nil {
		return
	}
	b := s.backend
	s.backend = nil
	if err := b.stop(); err != nil {
		t.Error(err)
	}
	if t.Failed() {
		t.Logf("static site's backend log:\n%s", b.log())
	}
}

// freeLoopbackAddr finds a loopback port nothing listens on. Another
// process could take it before the backend does; on a test machine that
// is rare enough, and startServer then fails clearly.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Fatal(err)
	}
	return addr
}
