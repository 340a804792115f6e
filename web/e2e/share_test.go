//go:build e2e

package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestShareFlow is flow 3: the address bar follows the edit, Share gives a
// link, and opening the link in a new tab restores every control and
// reproduces the identical images.
func TestShareFlow(t *testing.T) {
	ctx := tab(t)
	openEditor(t, ctx, srv.URL+"/")
	setPrompt(t, ctx, "target-0", "a blue square")
	setField(t, ctx, "seed", "4242")
	setField(t, ctx, "steps", "8")
	clickWhenThere(t, ctx, `#words-0 [data-key="square"]`)
	poll(t, ctx, `document.querySelector('#word-panel-word').textContent === 'square'`, 5*time.Second)
	mustEval[bool](t, ctx, `(() => { const r = document.querySelector('#reweight'); r.value = '-0.5'; return r.dispatchEvent(new Event('input', {bubbles: true})) })()`)
	poll(t, ctx, `location.hash.startsWith('#v1.')`, 5*time.Second)
	hashes := runAndWait(t, ctx, 2)

	// The URL was replaced, not pushed, while editing.
	if n := mustEval[int](t, ctx, `history.length`); n > 2 {
		t.Errorf("editing added %d history entries", n-1)
	}
	must(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#share"))))
	poll(t, ctx, `!!document.querySelector('#share-link')`, 5*time.Second)
	link := mustEval[string](t, ctx, `document.querySelector('#share-link').value`)
	if !strings.HasPrefix(link, srv.URL+"/#v1.") || link != mustEval[string](t, ctx, `location.href`) {
		t.Fatalf("share link %q does not match the page URL", link)
	}

	other := tab(t)
	openEditor(t, other, link)
	for js, want := range map[string]string{
		`document.querySelector('#target-0').value`:                                  "a blue square",
		`document.querySelector('#seed').value`:                                      "4242",
		`document.querySelector('#steps').value`:                                     "8",
		`document.querySelector('#words-0 [data-key="square"] .weight').textContent`: "×-0.5",
	} {
		if got := mustEval[string](t, other, js); got != want {
			t.Errorf("restored %s = %q, want %q", js, got, want)
		}
	}
	// The link runs itself and reproduces the same images.
	poll(t, other, `document.querySelector('#run-status').dataset.phase === 'done'`, 90*time.Second)
	again := mustEval[[]string](t, other, `Array.from(document.querySelectorAll('#results .tile[data-row]')).map(e => e.dataset.hash)`)
	if !equal(again, hashes) {
		t.Errorf("the link rendered %v, the original run %v", again, hashes)
	}
}
