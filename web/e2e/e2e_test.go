//go:build e2e

// Package e2e drives the real editor in a real headless Chromium against a
// real bin/reword server on loopback. Run with `make e2e` (or
// REWORD_BIN=bin/reword go test -tags e2e ./web/e2e).
package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// server is a running bin/reword serve.
type server struct {
	URL string
	log *strings.Builder
}

var listening = regexp.MustCompile(`serving on (http://\S+)`)

func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	bin := os.Getenv("REWORD_BIN")
	if bin == "" {
		t.Fatal("REWORD_BIN is not set: run the browser tests with `make e2e`, which builds bin/reword first")
	}
	cmd := exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &strings.Builder{}
	var mu sync.Mutex
	cmd.Stderr = writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return logs.Write(p) })
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			t.Error("server did not stop within 15 s of SIGTERM")
		}
		if t.Failed() {
			mu.Lock()
			t.Logf("server log:\n%s", logs.String())
			mu.Unlock()
		}
	})
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				urlc <- m[1]
			}
		}
	}()
	select {
	case u := <-urlc:
		return &server{URL: u, log: logs}
	case <-time.After(30 * time.Second):
		t.Fatalf("server did not report its address within 30 s; log:\n%s", logs.String())
		return nil
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// newBrowser starts a headless Chromium with the flags this sandbox needs
// (no sandbox as root, no background network traffic).
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	exe := "/usr/bin/chromium"
	if _, err := os.Stat(exe); err != nil {
		t.Fatalf("chromium not found at %s: run `make deps-browser` (apt-get install chromium)", exe)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("headless", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 860),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelC := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	return ctx
}

func poll(t *testing.T, ctx context.Context, js string, timeout time.Duration) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(timeout))); err != nil {
		t.Fatalf("waiting for %s: %v", js, err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestEditorLoadsAndGreets opens the served page, waits until the WASM has
// taken over the prerendered HTML, and sees the server's hello arrive over
// the WebSocket. It also measures what the WASM cost on the wire.
func TestEditorLoadsAndGreets(t *testing.T) {
	srv := startServer(t)
	ctx := newBrowser(t)

	var mu sync.Mutex
	wasmReq := map[network.RequestID]bool{}
	var wasmEncoded float64
	var wasmEncoding string
	must(t, chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *network.EventResponseReceived:
			if strings.HasSuffix(e.Response.URL, "/web/app.wasm") {
				wasmReq[e.RequestID] = true
				if enc, ok := e.Response.Headers["Content-Encoding"]; ok {
					wasmEncoding = fmt.Sprint(enc)
				} else if enc, ok := e.Response.Headers["content-encoding"]; ok {
					wasmEncoding = fmt.Sprint(enc)
				}
			}
		case *network.EventLoadingFinished:
			if wasmReq[e.RequestID] {
				wasmEncoded = e.EncodedDataLength
			}
		}
	}))
	must(t, chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")))
	poll(t, ctx, `document.querySelector('#app') && document.querySelector('#app').dataset.ready === 'true'`, 60*time.Second)
	poll(t, ctx, `document.querySelector('#status').dataset.state === 'connected' && /server .* model /.test(document.querySelector('#status-text').textContent)`, 20*time.Second)

	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#status-text")))
	must(t, err)
	t.Logf("status: %s", text)

	mu.Lock()
	enc, size := wasmEncoding, wasmEncoded
	mu.Unlock()
	raw, err := os.Stat(filepath.Join(filepath.Dir(os.Getenv("REWORD_BIN")), "web", "app.wasm"))
	must(t, err)
	if size <= 0 {
		t.Fatal("the browser never finished loading /web/app.wasm")
	}
	t.Logf("app.wasm: %.1f MB raw, %.1f MB transferred (Content-Encoding %s)", float64(raw.Size())/1e6, size/1e6, enc)
	if enc == "" || size > 0.5*float64(raw.Size()) {
		t.Errorf("app.wasm was not served compressed: %.0f bytes on the wire for %d raw (encoding %q)", size, raw.Size(), enc)
	}

	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	must(t, err)
	if dir := os.Getenv("REWORD_SCREENSHOTS"); dir != "" {
		must(t, os.WriteFile(filepath.Join(dir, "editor-desktop.png"), png, 0o644))
	}
}
