//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"testing"
	"time"
)

// TestBlendChanged: the blend on the changed words is a menu of the
// settings; on and off run as the spec's blend_changed, draw different
// targets, and the share link and the history bring the choice back.
func TestBlendChanged(t *testing.T) {
	checkBlendSwitch(t, redToBlue(t), "blend-changed", "blend_changed")
}

// TestBlendReweighted: the blend of a reweight on its words is a menu of
// the settings; on and off run as the spec's blend_reweighted, draw
// different targets for an edit that reweights a word of the source (and
// keep the reweight), and the share link and the history bring the choice
// back.
func TestBlendReweighted(t *testing.T) {
	ctx := redToBlue(t)
	// A pure reweight: the source's prompt, "red" scaled by −1.
	setPrompt(t, ctx, "target-0", "a red circle")
	clickWhenThere(t, ctx, `#words-0 [data-key="red"]`)
	poll(t, ctx, `document.querySelector('#word-panel-word')?.textContent === 'red'`, 5*time.Second)
	mustEval[bool](t, ctx, `(() => { const r = document.querySelector('#reweight'); r.value = '-1'; return r.dispatchEvent(new Event('input', {bubbles: true})) })()`)
	poll(t, ctx, `document.querySelector('#words-0 [data-key="red"] .weight')?.textContent === '×−1'`, 5*time.Second)
	checkBlendSwitch(t, ctx, "blend-reweighted", "blend_reweighted")
	var spec struct {
		Reweights map[string]float64 `json:"reweights"`
	}
	must(t, json.Unmarshal([]byte(mustEval[string](t, ctx, `document.querySelector('#run-spec-json').textContent`)), &spec))
	if spec.Reweights["red"] != -1 {
		t.Errorf("the runs reweighted %v; want red ×−1", spec.Reweights)
	}
}

// checkBlendSwitch checks the on/off blend menu id of the editor in ctx
// (its edit set up): off and on run with the spec's field false and true
// and draw different targets, and the share link and the history bring
// "on" back.
func checkBlendSwitch(t *testing.T, ctx context.Context, id, field string) {
	t.Helper()
	ran := func() (on *bool) {
		t.Helper()
		raw := mustEval[string](t, ctx, `JSON.stringify(JSON.parse(document.querySelector('#run-spec-json').textContent)['`+field+`'] ?? null)`)
		must(t, json.Unmarshal([]byte(raw), &on))
		return on
	}
	choose(t, ctx, id, "off")
	runAndWait(t, ctx, 2)
	if b := ran(); b == nil || *b {
		t.Errorf("off ran %s %v; want false", field, b)
	}
	off := pixels(t, ctx, 1)
	choose(t, ctx, id, "on")
	runAndWait(t, ctx, 2)
	if b := ran(); b == nil || !*b {
		t.Errorf("on ran %s %v; want true", field, b)
	}
	if pixels(t, ctx, 1) == off {
		t.Errorf("with %s on the target is drawn as with it off", field)
	}

	link := mustEval[string](t, ctx, `location.href`)
	other := tab(t)
	openEditor(t, other, link)
	poll(t, other, `document.querySelector('#`+id+`').value === 'on'`, 5*time.Second)

	choose(t, ctx, id, "off")
	clickWhenThere(t, ctx, "#history-0")
	poll(t, ctx, `document.querySelector('#`+id+`').value === 'on'`, 5*time.Second)
}

// TestDecodeNorm: where the edits take their decoder statistics is a menu
// of the settings; the source's and each image's own run as the spec's
// decode_norm, draw different targets, and the share link brings the
// choice back.
func TestDecodeNorm(t *testing.T) {
	ctx := redToBlue(t)
	ran := func() string {
		t.Helper()
		var spec struct {
			DecodeNorm string `json:"decode_norm"`
		}
		must(t, json.Unmarshal([]byte(mustEval[string](t, ctx, `document.querySelector('#run-spec-json').textContent`)), &spec))
		return spec.DecodeNorm
	}
	choose(t, ctx, "decode-norm", "own")
	runAndWait(t, ctx, 2)
	if d := ran(); d != "own" {
		t.Errorf("each its own ran decode_norm %q; want own", d)
	}
	own := pixels(t, ctx, 1)
	choose(t, ctx, "decode-norm", "source")
	runAndWait(t, ctx, 2)
	if d := ran(); d != "source" {
		t.Errorf("the source ran decode_norm %q; want source", d)
	}
	if pixels(t, ctx, 1) == own {
		t.Error("the edit decoded with the source's statistics drew the same target as with its own")
	}
	other := tab(t)
	openEditor(t, other, mustEval[string](t, ctx, `location.href`))
	poll(t, other, `document.querySelector('#decode-norm').value === 'source'`, 5*time.Second)
}
