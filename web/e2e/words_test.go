//go:build e2e

package e2e

import (
	"strings"
	"testing"
	"time"
)

// TestWordsAUserUnderstands is item 9 of issue 20: the replacement windows
// say in a line what they do, edits have one name in the form and the
// results, removed words show in the diff, and reweights read "×−1" with
// a reset to ×1.
func TestWordsAUserUnderstands(t *testing.T) {
	ctx := tab(t)
	openEditor(t, ctx, srv.URL+"/")
	hint := func(id string) string {
		return mustEval[string](t, ctx, `document.querySelector('#`+id+`-hint').textContent`)
	}
	// The embedded model holds the source's maps to the end (cross 1).
	if h := hint("cross"); !strings.Contains(h, "layout") || !strings.Contains(h, "for all of the steps") {
		t.Errorf("cross explained as %q", h)
	}
	if h := hint("self"); !strings.Contains(h, "first 40\u00a0% of the steps") {
		t.Errorf("self explained as %q", h)
	}
	setField(t, ctx, "cross", "0.7")
	poll(t, ctx, `document.querySelector('#cross-hint').textContent.includes('first 70\u00a0%')`, 5*time.Second)

	// A phrase swapped for one of another length: words added and removed.
	setPrompt(t, ctx, "source", "a red circle on a white background")
	setPrompt(t, ctx, "target-0", "a red circle on grass")
	poll(t, ctx, `document.querySelector('#edit-kind-0').dataset.kind === 'add-remove'`, 5*time.Second)
	// No edit swaps a word now: the swapped words' window says it applies to none.
	if h := hint("cross_changed"); !strings.HasPrefix(h, "No edit swaps a word") {
		t.Errorf("with no word swapped, the swapped words' window is explained as %q", h)
	}
	if k := mustEval[string](t, ctx, `document.querySelector('#edit-kind-0').textContent`); k != "add & remove" {
		t.Errorf("kind label %q", k)
	}
	if removed := mustEval[[]string](t, ctx, `Array.from(document.querySelectorAll('#words-0 .word.removed')).map(w => w.textContent)`); !equal(removed, []string{"a", "white", "background"}) {
		t.Errorf("removed words shown: %q", removed)
	}
	if order := mustEval[string](t, ctx, `Array.from(document.querySelectorAll('#words-0 .word')).map(w => w.textContent).join(' ')`); order != "a red circle on a white background grass" {
		t.Errorf("the diff reads %q", order)
	}

	// Reweight with a real minus, and back to ×1.
	clickWhenThere(t, ctx, `#words-0 [data-key="grass"]`)
	poll(t, ctx, `document.querySelector('#word-panel-word')?.textContent === 'grass'`, 5*time.Second)
	mustEval[bool](t, ctx, `(() => { const r = document.querySelector('#reweight'); r.value = '-1'; return r.dispatchEvent(new Event('input', {bubbles: true})) })()`)
	poll(t, ctx, `document.querySelector('#words-0 [data-key="grass"] .weight')?.textContent === '×−1'`, 5*time.Second)
	if v := mustEval[string](t, ctx, `document.querySelector('#reweight-value').textContent`); v != "×−1" {
		t.Errorf("panel shows %q", v)
	}
	clickWhenThere(t, ctx, "#reweight-reset")
	poll(t, ctx, `!document.querySelector('#words-0 [data-key="grass"] .weight') && document.querySelector('#reweight-value').textContent === '×1'`, 5*time.Second)

	// The same names in the form and in the results.
	clickWhenThere(t, ctx, "#add-target")
	poll(t, ctx, `!!document.querySelector('#target-1')`, 5*time.Second)
	setPrompt(t, ctx, "target-1", "a red square on a white background")
	setField(t, ctx, "steps", "5")
	runAndWait(t, ctx, 3)
	form := mustEval[[]string](t, ctx, `['target-0', 'target-1'].map(id => document.querySelector('label[for=' + id + ']').textContent)`)
	results := mustEval[[]string](t, ctx, `['#row-1', '#row-2'].map(id => document.querySelector(id + ' figcaption strong').textContent)`)
	if !equal(form, []string{"Edit 1", "Edit 2"}) || !equal(results, form) {
		t.Errorf("the form says %q, the results %q", form, results)
	}
}
