//go:build e2e

package e2e

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestPhoneRunComesIntoView is item 6 of issue 20: at phone width the
// status and images are below the form; Run brings them into view.
func TestPhoneRunComesIntoView(t *testing.T) {
	ctx := tab(t)
	must(t, chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile)))
	openEditor(t, ctx, srv.URL+"/")
	setField(t, ctx, "steps", "4")
	mustEval[bool](t, ctx, `(window.scrollTo(0, 0), true)`)
	visible := `(() => { const r = document.querySelector('#run-status').getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight })()`
	if mustEval[bool](t, ctx, visible) {
		t.Fatal("the run status is in view before Run: the layout is not the phone's")
	}
	if !mustEval[bool](t, ctx, `(() => { const r = document.querySelector('#run').getBoundingClientRect(); return r.top >= 0 && r.bottom <= window.innerHeight })()`) {
		t.Fatal("Run is not in view at the top of the page")
	}
	mustEval[bool](t, ctx, `(document.querySelector('#run').click(), true)`)
	poll(t, ctx, visible, 10*time.Second)
	poll(t, ctx, `document.querySelector('#run-status').dataset.phase === 'done'`, 60*time.Second)
}
