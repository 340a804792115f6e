//go:build e2e

package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestEditKindChoice is item 1 of issue 21: each edit's kind menu offers
// auto (naming what it resolves to), replace and refine; the choice
// re-marks the words, a replace the prompts cannot take is refused in
// words, and the choice runs, travels in the share link and comes back
// from the history.
func TestEditKindChoice(t *testing.T) {
	ctx := redToBlue(t)
	badge := `document.querySelector('#edit-kind-0')`
	autoOption := `document.querySelector('#edit-kind-choice-0 option[value="auto"]').textContent`
	poll(t, ctx, badge+`.dataset.kind === 'swap' && `+autoOption+` === 'auto: swap'`, 5*time.Second)

	// Refine: the swapped word becomes a removed and an added one.
	choose(t, ctx, "edit-kind-choice-0", "refine")
	poll(t, ctx, badge+`.dataset.kind === 'add-remove' && `+badge+`.dataset.choice === 'refine'`, 5*time.Second)
	if s := mustEval[string](t, ctx, `document.querySelector('#words-0 [data-key="blue"]').dataset.status`); s != "inserted" {
		t.Errorf("with refine, blue is %q, want inserted", s)
	}

	// Replace across different word counts is refused next to the menu,
	// with both counts; auto would refine, and the badge says so.
	choose(t, ctx, "edit-kind-choice-0", "replace")
	setPrompt(t, ctx, "target-0", "a blue circle on grass")
	poll(t, ctx, `(document.querySelector('.field-error[data-field="kinds[0]"]')?.textContent ?? '').includes('the source has 3, edit 1 has 5')`, 5*time.Second)
	if r := mustEval[string](t, ctx, badge+`.dataset.refused`); r != "true" {
		t.Errorf("badge refused = %q, want true", r)
	}
	must(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#run"))))
	poll(t, ctx, `document.querySelector('#run-status').dataset.phase === 'refused'`, 5*time.Second)

	// The refinement runs as chosen: the server echoes it.
	setPrompt(t, ctx, "target-0", "a blue circle")
	choose(t, ctx, "edit-kind-choice-0", "refine")
	poll(t, ctx, `!document.querySelector('.field-error[data-field="kinds[0]"]')`, 5*time.Second)
	runAndWait(t, ctx, 2)
	var ran struct {
		Kinds []string `json:"kinds"`
	}
	must(t, json.Unmarshal([]byte(mustEval[string](t, ctx, `document.querySelector('#run-spec-json').textContent`)), &ran))
	if !equal(ran.Kinds, []string{"refine"}) {
		t.Errorf("the run ran kinds %q, want [refine]", ran.Kinds)
	}

	// The share link carries the choice.
	link := mustEval[string](t, ctx, `location.href`)
	other := tab(t)
	openEditor(t, other, link)
	poll(t, other, `document.querySelector('#edit-kind-choice-0').value === 'refine' && document.querySelector('#edit-kind-0').dataset.kind === 'add-remove'`, 5*time.Second)

	// Back to auto, then the history puts refine back.
	choose(t, ctx, "edit-kind-choice-0", "auto")
	poll(t, ctx, badge+`.dataset.kind === 'swap'`, 5*time.Second)
	clickWhenThere(t, ctx, "#history-0")
	poll(t, ctx, `document.querySelector('#edit-kind-choice-0').value === 'refine' && `+badge+`.dataset.kind === 'add-remove'`, 5*time.Second)
	if strings.Contains(mustEval[string](t, ctx, autoOption), "swap") {
		t.Errorf("with refine chosen, the auto option still names a kind: %q", mustEval[string](t, ctx, autoOption))
	}
}
