//go:build e2e

package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"reword/shared/edit"
)

// TestSelfLayersAndReplaceTail covers the editor's part of items 1 and 2
// of issue 21: the self-attention layers menu offers the model's grids
// (from the server's hello) and the replace tail the reference's mapping;
// both run as chosen, travel in the share link, come back from the
// history, and a link with values out of range says so next to them and
// is not run.
func TestSelfLayersAndReplaceTail(t *testing.T) {
	ctx := redToBlue(t)
	setField(t, ctx, "self", "1")
	// Folded away until opened: the defaults suit most edits.
	section := `document.querySelector('#reference-settings')`
	if mustEval[bool](t, ctx, section+`.open`) {
		t.Error("the reference settings are open in a fresh editor")
	}
	clickWhenThere(t, ctx, "#reference-settings summary")
	poll(t, ctx, section+`.open && `+section+`.querySelector('#self-max-tokens').offsetHeight > 0`, 5*time.Second)

	// The tiny model's grids: 4×4, 8×8 and 16×16, its default all of them.
	options := mustEval[[]string](t, ctx, `Array.from(document.querySelectorAll('#self-max-tokens option')).map(o => o.value + '=' + o.textContent)`)
	want := []string{"default=model default: 16×16 and coarser (≤ 256 positions, 10 of 10 layers)", "16=4×4 only (≤ 16 positions, 4 of 10 layers)",
		"64=8×8 and coarser (≤ 64 positions, 7 of 10 layers)", "256=16×16 and coarser (≤ 256 positions, 10 of 10 layers)"}
	if !equal(options, want) {
		t.Errorf("self-attention layer choices %q, want %q", options, want)
	}
	hint := `document.querySelector('#self-max-tokens-hint').textContent`
	poll(t, ctx, hint+`.startsWith("Keeps the source's shapes in 10 of the 10")`, 5*time.Second)
	runAndWait(t, ctx, 2)
	beforePixels := pixels(t, ctx, 1)

	// Only the 4×4 layers: the edit changes, and the server runs that.
	choose(t, ctx, "self-max-tokens", "16")
	poll(t, ctx, hint+`.startsWith("Keeps the source's shapes in 4 of the 10")`, 5*time.Second)
	// The replace tail matters once a swapped word changes token count.
	tailHint := `document.querySelector('#replace-tail-hint').textContent`
	if h := mustEval[string](t, ctx, tailHint); !strings.Contains(h, "no edit here has such a swap") {
		t.Errorf("tail hint for a one-token swap: %q", h)
	}
	setPrompt(t, ctx, "target-0", "a aquamarine circle") // aqu·amarine: two tokens for one
	poll(t, ctx, tailHint+`.startsWith('Edit 1 swaps words of different token counts')`, 5*time.Second)
	choose(t, ctx, "replace-tail", "reference")
	runAndWait(t, ctx, 2)
	var ran struct {
		SelfMaxTokens *int   `json:"self_max_tokens"`
		ReplaceTail   string `json:"replace_tail"`
	}
	must(t, json.Unmarshal([]byte(mustEval[string](t, ctx, `document.querySelector('#run-spec-json').textContent`)), &ran))
	if ran.SelfMaxTokens == nil || *ran.SelfMaxTokens != 16 || ran.ReplaceTail != "reference" {
		t.Errorf("the run ran self_max_tokens %v, replace_tail %q; want 16 and reference", ran.SelfMaxTokens, ran.ReplaceTail)
	}
	// Back to the one-token swap, which the first run drew in all ten
	// layers: its pixels change with the layers.
	setPrompt(t, ctx, "target-0", "a blue circle")
	runAndWait(t, ctx, 2)
	if pixels(t, ctx, 1) == beforePixels {
		t.Error("self-replacing in the 4×4 layers only drew the same edit as in all 10 layers")
	}

	// The share link carries both; another tab opens with them.
	link := mustEval[string](t, ctx, `location.href`)
	other := tab(t)
	openEditor(t, other, link)
	poll(t, other, `document.querySelector('#self-max-tokens').value === '16' && document.querySelector('#replace-tail').value === 'reference' && document.querySelector('#reference-settings').open`, 5*time.Second)

	// Back to the defaults; the history puts the choices back.
	choose(t, ctx, "self-max-tokens", "default")
	choose(t, ctx, "replace-tail", "aligned")
	poll(t, ctx, hint+`.startsWith("Keeps the source's shapes in 10 of the 10")`, 5*time.Second)
	if !mustEval[bool](t, ctx, section+`.open`) {
		t.Error("the reference settings folded away when their values went back to the defaults")
	}
	clickWhenThere(t, ctx, "#history-0")
	poll(t, ctx, `document.querySelector('#self-max-tokens').value === '16' && document.querySelector('#replace-tail').value === 'reference'`, 5*time.Second)
}

// TestSelfLayersAndReplaceTailOutOfRange: a link whose self_max_tokens and
// replace_tail the server would refuse opens with both problems in words
// next to their menus, is not run, and runs once they are chosen again.
func TestSelfLayersAndReplaceTailOutOfRange(t *testing.T) {
	seed, steps, zero := uint64(5), 3, 0
	link, err := edit.EncodeLink(edit.Spec{Source: "a red circle", Targets: []string{"a blue circle"}, Seed: &seed, Steps: &steps,
		SelfMaxTokens: &zero, ReplaceTail: "sideways"})
	must(t, err)
	ctx := tab(t)
	openEditor(t, ctx, srv.URL+"/e#"+link)
	poll(t, ctx, `document.querySelector('#run-status').dataset.phase === 'refused'`, 20*time.Second)
	if got := fieldErrorText(t, ctx, "self_max_tokens"); got != "Self-attention layers must be a count of query positions from 1 to 1048576, e.g. 256 for the 16×16 layers and coarser at 512 px (it is 0)." {
		t.Errorf("self_max_tokens 0: %q", got)
	}
	if got := fieldErrorText(t, ctx, "replace_tail"); got != `Replace tail must be one of aligned, reference (it is "sideways").` {
		t.Errorf("replace_tail sideways: %q", got)
	}
	// The menus show what the link holds, unfolded.
	if !mustEval[bool](t, ctx, `document.querySelector('#reference-settings').open`) {
		t.Error("the reference settings stay folded over their problems")
	}
	if v := mustEval[string](t, ctx, `document.querySelector('#self-max-tokens').value + ' ' + document.querySelector('#replace-tail').value`); v != "0 sideways" {
		t.Errorf("menus show %q, want the link's values", v)
	}
	choose(t, ctx, "self-max-tokens", "64")
	choose(t, ctx, "replace-tail", "aligned")
	poll(t, ctx, `!document.querySelector('.field-error[data-field="self_max_tokens"]') && !document.querySelector('.field-error[data-field="replace_tail"]')`, 5*time.Second)
	runAndWait(t, ctx, 2)
}
