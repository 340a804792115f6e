//go:build e2e

package e2e

import (
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"reword/shared/edit"
)

// TestEditFlow is flow 1: the token diff follows typing, Run streams
// previews into a canvas per row and ends with the final images, and Cancel
// stops a run.
func TestEditFlow(t *testing.T) {
	ctx := tab(t)
	openEditor(t, ctx, srv.URL+"/")

	// Typing into the edited prompt re-marks its words live.
	setPrompt(t, ctx, "target-0", "")
	must(t, chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS("#target-0"), "a green circle")))
	// Wait for the words of the last keystroke: "a green circl" is a swap too.
	poll(t, ctx, `Array.from(document.querySelectorAll('#words-0 .word')).map(w => w.textContent).join(' ') === 'a green circle'`, 5*time.Second)
	poll(t, ctx, `document.querySelector('#edit-kind-0').dataset.kind === 'swap'`, 5*time.Second)
	words := `Array.from(document.querySelectorAll('#words-0 .word')).map(w => w.textContent + '=' + w.dataset.status)`
	statuses := mustEval[[]string](t, ctx, words)
	if want := []string{"a=kept", "green=swapped", "circle=kept"}; !equal(statuses, want) {
		t.Errorf("target words %v, want %v", statuses, want)
	}
	setPrompt(t, ctx, "target-0", "a big red circle")
	poll(t, ctx, `document.querySelector('#edit-kind-0').dataset.kind === 'add'`, 5*time.Second)
	if s := mustEval[string](t, ctx, `document.querySelector('#words-0 [data-key="big"]').dataset.status`); s != "inserted" {
		t.Errorf("added word is %q, want inserted", s)
	}
	long := ""
	for range 80 {
		long += "red "
	}
	setPrompt(t, ctx, "target-0", long+"circle")
	poll(t, ctx, `document.querySelector('#token-count-0').dataset.over === 'true' && document.querySelector('#words-0 .word:last-child').dataset.status === 'ignored'`, 5*time.Second)

	// A second variant, then run: two edits and the source.
	setPrompt(t, ctx, "target-0", "a blue circle")
	must(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#add-target"))))
	poll(t, ctx, `!!document.querySelector('#target-1')`, 5*time.Second)
	setPrompt(t, ctx, "target-1", "a blue square")
	setField(t, ctx, "steps", "12")

	// The history is the browser's (other tests' runs are in it too): one
	// more entry after this run.
	before := mustEval[int](t, ctx, `document.querySelectorAll('#history .history-item').length`)
	must(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#run"))))
	poll(t, ctx, `document.querySelectorAll('#results .tile[data-row]').length === 3`, 60*time.Second)
	for _, id := range []string{"preview-0", "preview-1", "preview-2"} {
		poll(t, ctx, canvasHasPixels(id), 60*time.Second)
	}
	poll(t, ctx, `document.querySelector('#run-status').dataset.phase === 'done'`, 60*time.Second)
	for _, row := range []string{"0", "1", "2"} {
		poll(t, ctx, `(() => { const i = document.querySelector('#final-`+row+`'); return i && i.complete && i.naturalWidth > 0 })()`, 10*time.Second)
		if p := mustEval[float64](t, ctx, `document.querySelector('#progress-`+row+`').value / document.querySelector('#progress-`+row+`').max`); p != 1 {
			t.Errorf("row %s progress ends at %v", row, p)
		}
	}
	if n := mustEval[int](t, ctx, `document.querySelectorAll('#history .history-item').length`); n != min(before+1, 24) {
		t.Errorf("history holds %d entries after one run, %d before", n, before)
	}

	// Ctrl+Enter runs; Cancel stops the run (a long one, so it is caught).
	setField(t, ctx, "steps", "150")
	must(t, chromedp.Do(ctx, chromedp.Focus(chromedp.CSS("#target-0")),
		chromedp.KeyEvent("\r", chromedp.KeyModifiers(2 /* ctrl */))))
	poll(t, ctx, `!!document.querySelector('#cancel')`, 10*time.Second)
	must(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#cancel"))))
	poll(t, ctx, `document.querySelector('#run-status').dataset.phase === 'cancelled'`, 30*time.Second)
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestQuickEditsAllStay types a prompt and then a setting before the editor
// has re-rendered in between (both in one JavaScript turn, so go-app gets
// both events queued): the setting must not put the old prompt back.
func TestQuickEditsAllStay(t *testing.T) {
	ctx := tab(t)
	openEditor(t, ctx, srv.URL+"/")
	mustEval[bool](t, ctx, `(() => {
		const type = (id, v) => { const el = document.getElementById(id); el.value = v; el.dispatchEvent(new Event('input', {bubbles: true})) };
		type('target-0', 'a blue square'); type('seed', '77'); type('steps', '9');
		return true })()`)
	poll(t, ctx, `Array.from(document.querySelectorAll('#words-0 .word')).map(w => w.textContent).join(' ') === 'a blue square'`, 5*time.Second)
	poll(t, ctx, `document.querySelector('#seed').value === '77' && document.querySelector('#steps').value === '9'`, 5*time.Second)
	// Nothing reverts later either: the link in the address bar holds all three.
	spec, err := edit.DecodeLink(mustEval[string](t, ctx, `location.hash`))
	must(t, err)
	if len(spec.Targets) != 1 || spec.Targets[0] != "a blue square" || spec.Seed == nil || *spec.Seed != 77 || spec.Steps == nil || *spec.Steps != 9 {
		t.Errorf("after quick edits the link holds targets %q, seed %v, steps %v", spec.Targets, spec.Seed, spec.Steps)
	}
}
