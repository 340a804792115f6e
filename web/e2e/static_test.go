//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// TestStaticHosting runs the statically hosted editor (web/staticsite, as
// `make static` writes it) from a plain file server against a backend on
// another origin: flow 1, a photo dropped onto the drop zone (uploaded
// cross-origin), and reconnection with backoff when the backend restarts.
// The subtests share one tab, in order: the WASM loads once.
func TestStaticHosting(t *testing.T) {
	site := startStaticSite(t)
	ctx := tab(t)
	openEditor(t, ctx, site.URL+"/")

	t.Run("edit flow", func(t *testing.T) { staticEditFlow(t, ctx, site) })
	t.Run("drop a photo", func(t *testing.T) { dropPhoto(t, ctx) })
	t.Run("reconnects with backoff", func(t *testing.T) { reconnect(t, ctx, site) })
}

// staticEditFlow is flow 1 on the static site: typed prompts, a run with
// previews streamed into a canvas per row, and final images loaded from
// the backend's origin.
func staticEditFlow(t *testing.T, ctx context.Context, site *staticSite) {
	if csp := mustEval[string](t, ctx, `document.querySelector('meta[http-equiv="Content-Security-Policy"]')?.content ?? ''`); !strings.Contains(csp, "connect-src 'self' "+strings.TrimSuffix(site.WebSocketURL, "/ws")) {
		t.Errorf("the page's policy %q does not let it reach the backend", csp)
	}
	setPrompt(t, ctx, "target-0", "")
	must(t, chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#target-0"), "a blue circle")))
	poll(t, ctx, `document.querySelector('#edit-kind-0').dataset.kind === 'swap'`, 5*time.Second)
	must(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#add-target"))))
	poll(t, ctx, `!!document.querySelector('#target-1')`, 5*time.Second)
	must(t, chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#target-1"), "a blue square")))
	setField(t, ctx, "steps", "12")

	must(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#run"))))
	poll(t, ctx, `document.querySelectorAll('#results .tile[data-row]').length === 3`, 60*time.Second)
	for _, id := range []string{"preview-0", "preview-1", "preview-2"} {
		poll(t, ctx, canvasHasPixels(id), 60*time.Second)
	}
	poll(t, ctx, `document.querySelector('#run-status').dataset.phase === 'done'`, 60*time.Second)
	for _, row := range []string{"0", "1", "2"} {
		img := `document.querySelector('#final-` + row + `')`
		poll(t, ctx, img+`?.complete && `+img+`.naturalWidth > 0`, 10*time.Second)
		if src := mustEval[string](t, ctx, img+`.src`); !strings.HasPrefix(src, site.BackendURL+"/images/") {
			t.Errorf("row %s's image comes from %s, want the backend %s", row, src, site.BackendURL)
		}
	}
}

// dropPhoto drops a PNG, drawn in the page, onto the drop zone the way a
// drag from the desktop does (dragover, then drop with a DataTransfer
// holding the File), and sees it uploaded to the backend and shown.
func dropPhoto(t *testing.T, ctx context.Context) {
	_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(async () => {
		const c = document.createElement('canvas'); c.width = 96; c.height = 80;
		const g = c.getContext('2d');
		g.fillStyle = '#fff'; g.fillRect(0, 0, 96, 80);
		g.fillStyle = '#dc1e1e'; g.beginPath(); g.arc(48, 40, 20, 0, 2 * Math.PI); g.fill();
		const blob = await new Promise(done => c.toBlob(done, 'image/png'));
		const dt = new DataTransfer();
		dt.items.add(new File([blob], 'photo.png', {type: 'image/png'}));
		window.rewordDrop = dt;
		return true })()`, chromedp.EvalAwaitPromise))
	must(t, err)
	drag := func(kind string) string {
		return fmt.Sprintf(`(() => { const e = new DragEvent(%q, {bubbles: true, cancelable: true, dataTransfer: window.rewordDrop});
			document.querySelector('#drop-zone').dispatchEvent(e); return e.defaultPrevented })()`, kind)
	}
	// Without preventDefault on dragover the browser refuses the drop, and
	// on drop it would open the file instead of the editor using it.
	if !mustEval[bool](t, ctx, drag("dragover")) {
		t.Error("dragover was not accepted (no preventDefault)")
	}
	poll(t, ctx, `document.querySelector('#drop-zone').classList.contains('dragging')`, 5*time.Second)
	if !mustEval[bool](t, ctx, drag("drop")) {
		t.Error("drop did not prevent the browser's default (opening the file)")
	}
	poll(t, ctx, `document.querySelector('#photo-crop')?.complete && document.querySelector('#photo-crop').naturalWidth === 96 || !!document.querySelector('#upload-problem')`, 20*time.Second)
	if p := mustEval[string](t, ctx, `document.querySelector('#upload-problem')?.textContent ?? ''`); p != "" {
		t.Fatalf("the dropped photo was not uploaded: %s", p)
	}
	if l := mustEval[string](t, ctx, `document.querySelector('label[for=source]').textContent`); l != "Caption" {
		t.Errorf("the source prompt is labelled %q after the drop, want Caption", l)
	}
	// Back to generated images, so the editor can run without inversion.
	must(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#clear-photo"))))
	poll(t, ctx, `!!document.querySelector('#drop-zone')`, 5*time.Second)
}

// reconnect stops the backend under a connected editor and starts it again
// on the same address: the status goes disconnected, the editor retries at
// growing intervals (not in a tight loop), and it is connected and ready to
// run once the backend is back.
func reconnect(t *testing.T, ctx context.Context, site *staticSite) {
	var mu sync.Mutex
	var attempts []time.Time
	lctx, stopListening := context.WithCancel(ctx)
	defer stopListening()
	must(t, chromedp.Listen(lctx, func(ev any) {
		if e, ok := ev.(*network.EventWebSocketCreated); ok && e.URL == site.WebSocketURL {
			mu.Lock()
			attempts = append(attempts, time.Now())
			mu.Unlock()
		}
	}))
	seen := func() []time.Time {
		mu.Lock()
		defer mu.Unlock()
		return append([]time.Time(nil), attempts...)
	}

	down := time.Now()
	site.stopBackend(t)
	poll(t, ctx, `document.querySelector('#status').dataset.state !== 'connected'`, 10*time.Second)
	poll(t, ctx, `document.querySelector('#status').dataset.state === 'disconnected' && document.querySelector('#run').disabled`, 10*time.Second)
	// Two failed tries, then the backend comes back (it takes seconds to
	// load the model, so at least one more try fails or waits): three or
	// more intervals to compare.
	for deadline := time.Now().Add(20 * time.Second); len(seen()) < 2; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d reconnection attempts in 20 s after the backend stopped, want 2", len(seen()))
		}
	}
	site.restartBackend(t)
	poll(t, ctx, `document.querySelector('#status').dataset.state === 'connected' && !document.querySelector('#run').disabled`, 40*time.Second)

	tries := seen()
	gaps := []time.Duration{tries[0].Sub(down)}
	for i := 1; i < len(tries); i++ {
		gaps = append(gaps, tries[i].Sub(tries[i-1]))
	}
	t.Logf("reconnection attempts after the backend stopped, spaced %v", gaps)
	if len(gaps) < 3 {
		t.Fatalf("reconnected after %d attempts; a restarted backend cannot be up before the third", len(gaps))
	}
	// The first try waits the first delay (0.5 s); each later interval
	// doubles. Timers on a loaded machine run late, so ask for 1.3×.
	for i := 2; i < len(gaps); i++ {
		if float64(gaps[i]) < 1.3*float64(gaps[i-1]) {
			t.Errorf("attempt %d came %v after the one before, which came %v after its own: no backoff", i+1, gaps[i], gaps[i-1])
		}
	}
	if gaps[1] < 400*time.Millisecond {
		t.Errorf("the second attempt came %v after the first: retrying without a delay", gaps[1])
	}
}
