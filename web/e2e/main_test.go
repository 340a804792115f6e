//go:build e2e

// Package e2e drives the real editor in a real headless Chromium against a
// real bin/reword server (with the tiny model) on loopback. Run with
// `make e2e` (or REWORD_BIN=bin/reword go test -tags e2e ./web/e2e).
//
// One server and one browser serve every test (starting Chromium and
// loading the WASM dominate the suite's time on 2 cores); each test opens
// its own tab.
package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// server is a running bin/reword serve.
type server struct {
	URL  string
	cmd  *exec.Cmd
	mu   sync.Mutex
	logs strings.Builder
}

func (s *server) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.Write(p)
}

func (s *server) log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logs.String()
}

var listening = regexp.MustCompile(`serving on (http://\S+)`)

// startServer runs bin/reword serve on a free loopback port with extra
// arguments.
func startServer(args ...string) (*server, error) {
	bin := os.Getenv("REWORD_BIN")
	if bin == "" {
		return nil, fmt.Errorf("REWORD_BIN is not set: run the browser tests with `make e2e`, which builds bin/reword first")
	}
	s := &server{cmd: exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	s.cmd.Stderr = s
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				urlc <- m[1]
			}
		}
		io.Copy(io.Discard, stdout)
	}()
	select {
	case s.URL = <-urlc:
		return s, nil
	case <-time.After(30 * time.Second):
		s.stop()
		return nil, fmt.Errorf("server did not report its address within 30 s; log:\n%s", s.log())
	}
}

// stop ends the server with SIGTERM and reports whether it stopped in time.
func (s *server) stop() error {
	s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case <-done:
		return nil
	case <-time.After(15 * time.Second):
		s.cmd.Process.Kill()
		return fmt.Errorf("server did not stop within 15 s of SIGTERM")
	}
}

var (
	srv     *server
	browser context.Context
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// A data folder of its own: the user's (their photos, results and the
	// embedded NATS's locked job files) stays untouched, and a `make run`
	// left running does not hold the lock the test server needs.
	data, err := os.MkdirTemp("", "reword-e2e-data-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(data)
	srv, err = startServer("--data", data)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer func() {
		if err := srv.stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}()
	exe := "/usr/bin/chromium"
	if _, err := os.Stat(exe); err != nil {
		fmt.Fprintf(os.Stderr, "chromium not found at %s: run `make deps-browser` (apt-get install chromium)\n", exe)
		return 1
	}
	dir, err := os.MkdirTemp("", "reword-e2e-chromium-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(dir),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("headless", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 900),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	// Start the browser now, so that a broken install fails once, clearly.
	if err := chromedp.Do(bctx); err != nil {
		fmt.Fprintln(os.Stderr, "starting chromium:", err)
		return 1
	}
	browser = bctx
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "server log:\n%s\n", srv.log())
	}
	return code
}

// tab opens a new tab of the shared browser for one test.
func tab(t *testing.T, opts ...chromedp.ContextOption) context.Context {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, opts...)
	ctx, cancelT := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelT(); cancel() })
	return ctx
}

// poll waits until the JavaScript predicate holds, checking often: the
// suite's time is mostly waiting, and a tight interval keeps it short.
func poll(t *testing.T, ctx context.Context, js string, timeout time.Duration) {
	t.Helper()
	// An exception (an element not there yet) counts as "not yet".
	guarded := fmt.Sprintf(`(() => { try { return !!(%s) } catch (e) { return false } })()`, js)
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](guarded,
		chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		state, _ := eval[string](ctx, `document.querySelector('#run-status') ? document.querySelector('#run-status').textContent : document.title`)
		t.Fatalf("waiting for %s: %v (run status: %q)", js, err, state)
	}
}

func eval[T any](ctx context.Context, js string) (T, error) {
	return chromedp.Run(ctx, chromedp.Evaluate[T](js))
}

func mustEval[T any](t *testing.T, ctx context.Context, js string) T {
	t.Helper()
	v, err := eval[T](ctx, js)
	if err != nil {
		t.Fatalf("evaluating %s: %v", js, err)
	}
	return v
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// openEditor loads a page of the editor and waits until the WASM runs it and
// the server said hello with a ready model.
func openEditor(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	must(t, chromedp.Do(ctx, chromedp.Navigate(url)))
	poll(t, ctx, `document.querySelector('#app') && document.querySelector('#app').dataset.ready === 'true'`, 60*time.Second)
	poll(t, ctx, `document.querySelector('#status').dataset.state === 'connected' && !document.querySelector('#run').disabled`, 20*time.Second)
}

// setPrompt replaces a prompt's text the way typing does (an input event
// per change), for fields where the keystrokes themselves do not matter.
func setPrompt(t *testing.T, ctx context.Context, id, text string) {
	t.Helper()
	typeInto(t, ctx, id, text, "input")
}

// setField types value into a setting the way a user does: input, then
// change when the field loses focus.
func setField(t *testing.T, ctx context.Context, id, value string) {
	t.Helper()
	typeInto(t, ctx, id, value, "input", "change")
}

// typeInto sets the value of the element with the given id and dispatches
// the events in one JavaScript turn.
func typeInto(t *testing.T, ctx context.Context, id, value string, events ...string) {
	t.Helper()
	names, err := json.Marshal(events)
	must(t, err)
	mustEval[bool](t, ctx, fmt.Sprintf(`(() => { const el = document.getElementById(%q); el.value = %q;
		for (const name of %s) el.dispatchEvent(new Event(name, {bubbles: true})); return true })()`, id, value, names))
}

// clickWhenThere waits up to 5 s for selector to match and clicks the
// element in the same JavaScript turn. chromedp.Click would wait for a
// missing element until the test's deadline (180 s); this fails fast and
// names the selector.
func clickWhenThere(t *testing.T, ctx context.Context, selector string) {
	t.Helper()
	poll(t, ctx, fmt.Sprintf(`(() => { const el = document.querySelector(%q); if (!el) return false; el.click(); return true })()`, selector), 5*time.Second)
}

// canvasHasPixels is a predicate: the canvas holds a drawn, non-blank image.
func canvasHasPixels(id string) string {
	return fmt.Sprintf(`(() => { const c = document.getElementById(%q); if (!c || c.width < 2) return false;
		const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
		let opaque = 0, distinct = new Set();
		for (let i = 0; i < d.length; i += 4) { if (d[i+3] === 255) opaque++; distinct.add(d[i] << 16 | d[i+1] << 8 | d[i+2]); }
		return opaque === d.length / 4 && distinct.size > 4; })()`, id)
}

// runAndWait presses Run and waits for the final images; it returns the
// image hash of each row.
func runAndWait(t *testing.T, ctx context.Context, rows int) []string {
	t.Helper()
	// The status names its run: wait for this one's end, not the last one's.
	last := mustEval[string](t, ctx, `document.querySelector('#run-status').dataset.run ?? ''`)
	must(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#run"))))
	poll(t, ctx, fmt.Sprintf(`(s => s.phase === 'refused' || s.run !== %q && ['done', 'failed', 'cancelled'].includes(s.phase))(document.querySelector('#run-status').dataset)`, last), 90*time.Second)
	if phase := mustEval[string](t, ctx, `document.querySelector('#run-status').dataset.phase`); phase != "done" {
		t.Fatalf("the run ended %s: %s", phase, mustEval[string](t, ctx, `document.querySelector('#run-status').textContent`))
	}
	hashes := mustEval[[]string](t, ctx, `Array.from(document.querySelectorAll('#results .tile[data-row]')).map(e => e.dataset.hash)`)
	if len(hashes) != rows {
		t.Fatalf("%d result rows, want %d", len(hashes), rows)
	}
	for i, h := range hashes {
		if len(h) != 64 {
			t.Fatalf("row %d has no image hash (%q)", i, h)
		}
	}
	return hashes
}

// choose picks a value of a select the way a user does (a change event).
func choose(t *testing.T, ctx context.Context, id, value string) {
	t.Helper()
	typeInto(t, ctx, id, value, "change")
}

// pixels is a predicate-free digest of the pixels of a row's final image:
// equal digests are equal pixels. (The PNGs' hashes differ whenever the
// specs do, since each PNG carries its spec.)
func pixels(t *testing.T, ctx context.Context, row int) string {
	t.Helper()
	img := fmt.Sprintf(`document.querySelector('#final-%d')`, row)
	poll(t, ctx, img+`?.complete && `+img+`.naturalWidth > 0`, 10*time.Second)
	return mustEval[string](t, ctx, `(() => { const i = `+img+`, c = document.createElement('canvas');
		c.width = i.naturalWidth; c.height = i.naturalHeight; const g = c.getContext('2d'); g.drawImage(i, 0, 0);
		const d = g.getImageData(0, 0, c.width, c.height).data; let h = 2166136261;
		for (let k = 0; k < d.length; k++) { h ^= d[k]; h = Math.imul(h, 16777619) >>> 0 }
		return c.width + 'x' + c.height + ':' + h.toString(16) })()`)
}

// fieldErrorText is the problem shown under a field ("" for none).
func fieldErrorText(t *testing.T, ctx context.Context, field string) string {
	t.Helper()
	return mustEval[string](t, ctx, fmt.Sprintf(`document.querySelector('.field-error[data-field=%q]')?.textContent ?? ''`, field))
}

// redToBlue opens the editor in a fresh browser context with the edit most
// tests start from: "a red circle" → "a blue circle", seed 21, 4 steps.
func redToBlue(t *testing.T) context.Context {
	t.Helper()
	ctx := tab(t, chromedp.WithNewBrowserContext())
	openEditor(t, ctx, srv.URL+"/")
	setPrompt(t, ctx, "source", "a red circle")
	setPrompt(t, ctx, "target-0", "a blue circle")
	setField(t, ctx, "seed", "21")
	setField(t, ctx, "steps", "4")
	return ctx
}
