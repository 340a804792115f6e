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
