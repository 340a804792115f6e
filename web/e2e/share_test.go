//go:build e2e

package e2e

import (
	"fmt"
	"strconv"
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
	poll(t, ctx, `location.hash.startsWith('#v6.')`, 5*time.Second)
	hashes := runAndWait(t, ctx, 2)

	// The URL was replaced, not pushed, while editing.
	if n := mustEval[int](t, ctx, `history.length`); n > 2 {
		t.Errorf("editing added %d history entries", n-1)
	}
	must(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#share"))))
	poll(t, ctx, `!!document.querySelector('#share-link')`, 5*time.Second)
	link := mustEval[string](t, ctx, `document.querySelector('#share-link').value`)
	if !strings.HasPrefix(link, srv.URL+"/#v6.") || link != mustEval[string](t, ctx, `location.href`) {
		t.Fatalf("share link %q does not match the page URL", link)
	}

	other := tab(t)
	openEditor(t, other, link)
	for js, want := range map[string]string{
		`document.querySelector('#target-0').value`:                                  "a blue square",
		`document.querySelector('#seed').value`:                                      "4242",
		`document.querySelector('#steps').value`:                                     "8",
		`document.querySelector('#words-0 [data-key="square"] .weight').textContent`: "×−0.5",
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

	// The link pasted into the address bar of the first tab, now showing
	// another edit: only the fragment changes, so the page does not load
	// again, and the editor opens the link itself (and runs it).
	setPrompt(t, ctx, "target-0", "a green circle")
	poll(t, ctx, `location.href !== `+strconv.Quote(link), 5*time.Second)
	runs := mustEval[int](t, ctx, `document.querySelectorAll('#history .history-item').length`)
	mustEval[string](t, ctx, `location.hash = `+strconv.Quote(link[strings.Index(link, "#"):]))
	poll(t, ctx, `document.querySelector('#target-0').value === 'a blue square' && location.href === `+strconv.Quote(link), 5*time.Second)
	// Its run is a new one: one more entry in the history.
	poll(t, ctx, fmt.Sprintf(`document.querySelectorAll('#history .history-item').length === %d && document.querySelector('#run-status').dataset.phase === 'done'`, runs+1), 90*time.Second)
}

// TestBrokenLinkSaysSo is item 3 of issue 20: a link that cannot be read
// says so, and keeps saying so after the server's hello (which used to
// erase the message and replace the address with the example's), until
// the user changes the edit.
func TestBrokenLinkSaysSo(t *testing.T) {
	ctx := tab(t)
	openEditor(t, ctx, srv.URL+"/e#v2.garbage")
	// openEditor returns once the server said hello with a ready model.
	if !strings.Contains(mustEval[string](t, ctx, `document.querySelector('#status-text').textContent`), "model") {
		t.Fatal("no hello yet")
	}
	msg := mustEval[string](t, ctx, `document.querySelector('#link-problem')?.textContent ?? ''`)
	if !strings.Contains(msg, "This edit link cannot be opened") || !strings.Contains(msg, "damaged") {
		t.Errorf("the page says %q about a damaged link", msg)
	}
	if h := mustEval[string](t, ctx, `location.hash`); h != "#v2.garbage" {
		t.Errorf("the address now holds %q; want the link as it was", h)
	}
	if mustEval[bool](t, ctx, `(() => { const p = document.querySelector('#link-problem'); return p.scrollWidth > p.clientWidth })()`) {
		t.Error("the message overflows its box")
	}
	// Acting on the editor replaces both.
	setPrompt(t, ctx, "target-0", "a green circle")
	poll(t, ctx, `!document.querySelector('#link-problem') && location.hash.startsWith('#v6.') && location.hash !== '#v2.garbage'`, 5*time.Second)

	// A link of a newer format says to update. (A new tab: the same page
	// with another fragment would not load again.)
	newer := tab(t)
	openEditor(t, newer, srv.URL+"/e#v9.AAAA")
	if msg := mustEval[string](t, newer, `document.querySelector('#link-problem')?.textContent ?? ''`); !strings.Contains(msg, "format version 9") {
		t.Errorf("a v9 link: %q", msg)
	}
}

// TestOldLinkOpens: a link written before blends were per edit (v1) opens,
// each edit blending the words it or the source has, and runs.
func TestOldLinkOpens(t *testing.T) {
	// `reword link encode` of the build before v2 links, for
	// {"source":"a red circle","targets":["a blue circle","a red square","a red circle on grass"],
	//  "seed":3,"steps":12,"blend":["grass","circle"]}.
	const v1 = "v1.QgnFotQUheTMouScVPRATMopTUVIQVQWF5YmFiG4EFmQ0elFicXFSrGwsDWGB64hsmcgqnSUoKbG1gICAAD__xcJR4M"
	ctx := tab(t)
	openEditor(t, ctx, srv.URL+"/e#"+v1)
	if p := mustEval[string](t, ctx, `document.querySelector('#link-problem')?.textContent ?? ''`); p != "" {
		t.Fatalf("the v1 link did not open: %s", p)
	}
	if got := mustEval[string](t, ctx, `document.querySelector('#target-2').value`); got != "a red circle on grass" {
		t.Errorf("edit 3 is %q", got)
	}
	for sel, want := range map[string]bool{
		`#words-0 [data-key="circle"] .blend-mark`: true, `#words-1 .blend-mark`: false,
		`#words-2 [data-key="grass"] .blend-mark`: true, `#words-2 [data-key="circle"] .blend-mark`: true,
	} {
		if got := mustEval[bool](t, ctx, `!!document.querySelector('`+sel+`')`); got != want {
			t.Errorf("%s: %v, want %v", sel, got, want)
		}
	}
	poll(t, ctx, `document.querySelector('#run-status').dataset.phase === 'done'`, 90*time.Second)
	if h := mustEval[string](t, ctx, `location.hash`); !strings.HasPrefix(h, "#v6.") {
		t.Errorf("the address holds %q; want the edit's current link", h)
	}
}
