//go:build e2e

package e2e

import (
	"testing"
	"time"
)

// TestLocalBlendBelongsToItsEdit is item 2 of issue 20: a blend word of
// one edit ("grass" in edit 3) leaves the other edits as they are without
// any blend (they used to become copies of the source), and the link
// carries the blend per edit.
func TestLocalBlendBelongsToItsEdit(t *testing.T) {
	ctx := tab(t)
	openEditor(t, ctx, srv.URL+"/")
	setPrompt(t, ctx, "target-0", "a blue circle")
	clickWhenThere(t, ctx, "#add-target")
	clickWhenThere(t, ctx, "#add-target")
	poll(t, ctx, `!!document.querySelector('#target-2')`, 5*time.Second)
	setPrompt(t, ctx, "target-1", "a red square")
	setPrompt(t, ctx, "target-2", "a red circle on grass")
	setField(t, ctx, "seed", "5")
	setField(t, ctx, "steps", "8")

	plain := runAndWait(t, ctx, 4)
	before := []string{pixels(t, ctx, 0), pixels(t, ctx, 1), pixels(t, ctx, 2)}

	clickWhenThere(t, ctx, `#words-2 [data-key="grass"]`)
	poll(t, ctx, `document.querySelector('#word-panel-word')?.textContent === 'grass'`, 5*time.Second)
	// "grass" is a word of edit 3 only: the panel offers it to that edit.
	if ids := mustEval[[]string](t, ctx, `Array.from(document.querySelectorAll('#word-blend select')).map(s => s.id)`); !equal(ids, []string{"word-blend-2"}) {
		t.Errorf("the panel offers grass to the blends %v, want edit 3's only", ids)
	}
	choose(t, ctx, "word-blend-2", "words")
	poll(t, ctx, `!!document.querySelector('#words-2 [data-key="grass"] .blend-mark')`, 5*time.Second)
	blended := runAndWait(t, ctx, 4)
	if equal(blended, plain) {
		t.Fatal("the run with a blend has the images of the run without")
	}
	if spec := mustEval[string](t, ctx, `JSON.stringify(JSON.parse(document.querySelector('#run-spec-json').textContent).blend)`); spec != `[{},{},{"words":["grass"]}]` {
		t.Errorf("the server ran blend %s", spec)
	}
	for row := 1; row <= 2; row++ {
		got := pixels(t, ctx, row)
		if got != before[row] {
			t.Errorf("edit %d has no blend but its image changed when edit 3 was blended", row)
		}
		if got == before[0] {
			t.Errorf("edit %d is a copy of the source", row)
		}
	}

	// The link carries the blend of edit 3 and no other.
	link := mustEval[string](t, ctx, `location.href`)
	other := tab(t)
	openEditor(t, other, link)
	if !mustEval[bool](t, other, `!!document.querySelector('#words-2 [data-key="grass"] .blend-mark') && !document.querySelector('#words-0 .blend-mark') && !document.querySelector('#words-1 .blend-mark')`) {
		t.Error("the link did not restore the blend of edit 3 alone")
	}
}
