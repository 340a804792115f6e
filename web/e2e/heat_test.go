//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestHeatMapsPinAndCompare is item 4 of issue 20: clicking a word pins
// its attention map, and a word's map is shown next to its counterpart's
// (the edit's word on the edit, the source's word it replaces on the
// source); hovering another word shows that one until the pointer leaves.
func TestHeatMapsPinAndCompare(t *testing.T) {
	ctx := tab(t)
	openEditor(t, ctx, srv.URL+"/")
	setPrompt(t, ctx, "target-0", "a blue circle")
	setField(t, ctx, "steps", "10")
	runAndWait(t, ctx, 2)
	shows := func(row int, word, pinned string) string {
		return fmt.Sprintf(`(() => { const c = document.querySelector('#heat-%d'), l = document.querySelector('#heat-legend-%d');
			return c.dataset.word === %q && c.dataset.pinned === %q && (%q === '' ? l.hidden : !l.hidden && l.querySelector('.heat-word').textContent === %q) })()`,
			row, row, word, pinned, word, word)
	}

	clickWhenThere(t, ctx, `#words-0 [data-key="blue"]`)
	poll(t, ctx, shows(1, "blue", "pinned")+" && "+shows(0, "red", "pinned"), 5*time.Second)
	if l := mustEval[string](t, ctx, `document.querySelector('#heat-legend-1').textContent`); !strings.Contains(l, "pinned") || !strings.Contains(l, "16×16") {
		t.Errorf("legend %q; want the word, pinned and the grid", l)
	}
	// The pin stays when the word loses focus (or the pointer leaves it).
	must(t, chromedp.Do(ctx, chromedp.Focus(chromedp.CSS("#run"))))
	poll(t, ctx, shows(1, "blue", "pinned")+" && "+shows(0, "red", "pinned"), 5*time.Second)

	// Another word shows while hovered, on both sides, then the pin again.
	must(t, chromedp.Do(ctx, chromedp.Focus(chromedp.CSS(`#words-0 [data-key="circle"]`))))
	poll(t, ctx, shows(1, "circle", "")+" && "+shows(0, "circle", ""), 5*time.Second)
	must(t, chromedp.Do(ctx, chromedp.Focus(chromedp.CSS(`#words-source [data-key="red"]`))))
	poll(t, ctx, shows(0, "red", "")+" && "+shows(1, "blue", ""), 5*time.Second)
	must(t, chromedp.Do(ctx, chromedp.Focus(chromedp.CSS("#run"))))
	poll(t, ctx, shows(1, "blue", "pinned")+" && "+shows(0, "red", "pinned"), 5*time.Second)

	// Closing the word's panel unpins it.
	must(t, chromedp.Do(ctx, chromedp.KeyEvent("\u001b")))
	poll(t, ctx, `!document.querySelector('#word-panel') && `+shows(1, "", "")+" && "+shows(0, "", ""), 5*time.Second)
}
