//go:build e2e

package e2e

import (
	"encoding/json"
	"testing"
	"time"
)

// TestBlendChanged: the blend on the changed words is a menu of the
// settings; on and off run as the spec's blend_changed, draw different
// targets, and the share link and the history bring the choice back.
func TestBlendChanged(t *testing.T) {
	ctx := redToBlue(t)
	ran := func() *bool {
		t.Helper()
		var spec struct {
			BlendChanged *bool `json:"blend_changed"`
		}
		must(t, json.Unmarshal([]byte(mustEval[string](t, ctx, `document.querySelector('#run-spec-json').textContent`)), &spec))
		return spec.BlendChanged
	}
	choose(t, ctx, "blend-changed", "off")
	runAndWait(t, ctx, 2)
	if b := ran(); b == nil || *b {
		t.Errorf("off ran blend_changed %v; want false", b)
	}
	off := pixels(t, ctx, 1)
	choose(t, ctx, "blend-changed", "on")
	runAndWait(t, ctx, 2)
	if b := ran(); b == nil || !*b {
		t.Errorf("on ran blend_changed %v; want true", b)
	}
	if pixels(t, ctx, 1) == off {
		t.Error("the edit blended on its changed words drew the same target as without the blend")
	}

	link := mustEval[string](t, ctx, `location.href`)
	other := tab(t)
	openEditor(t, other, link)
	poll(t, other, `document.querySelector('#blend-changed').value === 'on'`, 5*time.Second)

	choose(t, ctx, "blend-changed", "off")
	clickWhenThere(t, ctx, "#history-0")
	poll(t, ctx, `document.querySelector('#blend-changed').value === 'on'`, 5*time.Second)
}

// TestBlendReweighted: the blend of a reweight on its words is a menu of
// the settings; on and off run as the spec's blend_reweighted, draw
// different targets for an edit that reweights a word of the source, and
// the share link and the history bring the choice back.
func TestBlendReweighted(t *testing.T) {
	ctx := redToBlue(t)
	// A pure reweight: the source's prompt, "red" scaled by −1.
	setPrompt(t, ctx, "target-0", "a red circle")
	clickWhenThere(t, ctx, `#words-0 [data-key="red"]`)
	poll(t, ctx, `document.querySelector('#word-panel-word')?.textContent === 'red'`, 5*time.Second)
	mustEval[bool](t, ctx, `(() => { const r = document.querySelector('#reweight'); r.value = '-1'; return r.dispatchEvent(new Event('input', {bubbles: true})) })()`)
	poll(t, ctx, `document.querySelector('#words-0 [data-key="red"] .weight')?.textContent === '×−1'`, 5*time.Second)
	ran := func() (*bool, map[string]float64) {
		t.Helper()
		var spec struct {
			BlendReweighted *bool              `json:"blend_reweighted"`
			Reweights       map[string]float64 `json:"reweights"`
		}
		must(t, json.Unmarshal([]byte(mustEval[string](t, ctx, `document.querySelector('#run-spec-json').textContent`)), &spec))
		return spec.BlendReweighted, spec.Reweights
	}
	choose(t, ctx, "blend-reweighted", "off")
	runAndWait(t, ctx, 2)
	if b, r := ran(); b == nil || *b || r["red"] != -1 {
		t.Errorf("off ran blend_reweighted %v with reweights %v; want false with red ×−1", b, r)
	}
	off := pixels(t, ctx, 1)
	choose(t, ctx, "blend-reweighted", "on")
	runAndWait(t, ctx, 2)
	if b, r := ran(); b == nil || !*b || r["red"] != -1 {
		t.Errorf("on ran blend_reweighted %v with reweights %v; want true with red ×−1", b, r)
	}
	if pixels(t, ctx, 1) == off {
		t.Error("the reweight blended on its word drew the same target as without the blend")
	}

	link := mustEval[string](t, ctx, `location.href`)
	other := tab(t)
	openEditor(t, other, link)
	poll(t, other, `document.querySelector('#blend-reweighted').value === 'on'`, 5*time.Second)

	choose(t, ctx, "blend-reweighted", "off")
	clickWhenThere(t, ctx, "#history-0")
	poll(t, ctx, `document.querySelector('#blend-reweighted').value === 'on'`, 5*time.Second)
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
