//go:build e2e

package e2e

import (
	"reword/shared/edit"

	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// TestEditorLoadsAndGreets opens the served page, waits until the WASM has
// taken over the prerendered HTML, and sees the server's hello arrive over
// the WebSocket. It also measures what the WASM cost on the wire and checks
// that the page loads nothing from another host.
func TestEditorLoadsAndGreets(t *testing.T) {
	// A fresh browser context: other tests' tabs have cached the WASM.
	ctx := tab(t, chromedp.WithNewBrowserContext())

	var mu sync.Mutex
	wasmReq := map[network.RequestID]bool{}
	var wasmEncoded float64
	var wasmEncoding string
	var foreign []string
	must(t, chromedp.Listen(ctx, func(ev any) {
		mu.Lock()
		defer mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			u := e.Request.URL
			if !strings.HasPrefix(u, srv.URL) && !strings.HasPrefix(u, "ws://"+strings.TrimPrefix(srv.URL, "http://")) &&
				!strings.HasPrefix(u, "data:") && !strings.HasPrefix(u, "blob:") {
				foreign = append(foreign, u)
			}
		case *network.EventResponseReceived:
			if strings.HasSuffix(e.Response.URL, "/web/app.wasm") {
				wasmReq[e.RequestID] = true
				for k, v := range e.Response.Headers {
					if strings.EqualFold(k, "Content-Encoding") {
						wasmEncoding = fmt.Sprint(v)
					}
				}
			}
		case *network.EventLoadingFinished:
			if wasmReq[e.RequestID] {
				wasmEncoded = e.EncodedDataLength
			}
		}
	}))
	openEditor(t, ctx, srv.URL+"/")
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#status-text")))
	must(t, err)
	if !strings.Contains(text, "model ") {
		t.Errorf("status %q does not name the model", text)
	}

	mu.Lock()
	enc, size, other := wasmEncoding, wasmEncoded, foreign
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
	if len(other) > 0 {
		t.Errorf("the page requested other hosts: %v", other)
	}
}

// TestScreenshots renders the main screen after a run at desktop and phone
// width. With REWORD_SCREENSHOTS set to a folder it writes them there
// (docs/ holds the committed ones). At phone width nothing may overflow
// the viewport sideways.
func TestScreenshots(t *testing.T) {
	ctx := tab(t)
	openEditor(t, ctx, srv.URL+"/")
	// Seed 1, fixed before looking at any picture (the first of the gallery's
	// seeds 1–8): the committed screenshots show a typical edit, not a
	// chosen one. Changing it to a seed that looks better is picking.
	setPrompt(t, ctx, "seed", "1")
	runAndWait(t, ctx, 2)
	// The seed was only typed (input events, no change event): the run must
	// still have used it, which the URL's edit link records.
	link := mustEval[string](t, ctx, `location.hash`)
	spec, err := edit.DecodeLink(link)
	must(t, err)
	if spec.Seed == nil || *spec.Seed != 1 {
		t.Fatalf("the typed seed did not reach the edit: link spec %+v", spec)
	}
	for _, size := range []struct {
		name          string
		width, height int64
		mobile        bool
	}{{"desktop", 1280, 860, false}, {"phone", 390, 1400, true}} {
		opts := []chromedp.EmulateViewportOption{}
		if size.mobile {
			opts = append(opts, chromedp.EmulateMobile)
		}
		must(t, chromedp.Do(ctx, chromedp.EmulateViewport(size.width, size.height, opts...)))
		poll(t, ctx, fmt.Sprintf(`window.innerWidth === %d`, size.width), 5*time.Second)
		overflow := mustEval[float64](t, ctx, `document.documentElement.scrollWidth - window.innerWidth`)
		if overflow > 0 {
			t.Errorf("%s: the page is %v px wider than the viewport", size.name, overflow)
		}
		png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		must(t, err)
		if dir := os.Getenv("REWORD_SCREENSHOTS"); dir != "" {
			must(t, os.WriteFile(filepath.Join(dir, "editor-"+size.name+".png"), png, 0o644))
		}
	}
}
