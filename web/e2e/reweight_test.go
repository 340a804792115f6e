//go:build e2e

package e2e

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestReweightFlow is flow 2: clicking a word opens its panel, the slider's
// value shows on the word, reaches the server (echoed in the result's
// spec), and hovering the word after the run overlays its heat map.
func TestReweightFlow(t *testing.T) {
	ctx := tab(t)
	openEditor(t, ctx, srv.URL+"/")
	setField(t, ctx, "steps", "10")

	clickWhenThere(t, ctx, `#words-0 [data-key="blue"]`)
	poll(t, ctx, `document.querySelector('#word-panel-word')?.textContent === 'blue'`, 5*time.Second)
	mustEval[bool](t, ctx, `(() => { const r = document.querySelector('#reweight'); r.value = '1.5'; return r.dispatchEvent(new Event('input', {bubbles: true})) })()`)
	poll(t, ctx, `document.querySelector('#words-0 [data-key="blue"] .weight')?.textContent === '×1.5'`, 5*time.Second)
	if v := mustEval[string](t, ctx, `document.querySelector('#reweight-value').textContent`); v != "×1.5" {
		t.Errorf("panel shows %q, want ×1.5", v)
	}
	must(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#word-blend"))))
	poll(t, ctx, `!!document.querySelector('#words-0 [data-key="blue"] .blend-mark')`, 5*time.Second)
	// Escape closes the panel (keyboard users).
	must(t, chromedp.Do(ctx, chromedp.Focus(chromedp.CSS("#reweight")), chromedp.KeyEvent("\u001b")))
	poll(t, ctx, `!document.querySelector('#word-panel')`, 5*time.Second)

	runAndWait(t, ctx, 2)
	var ran struct {
		Reweights map[string]float64 `json:"reweights"`
		Blend     []string           `json:"blend"`
		Steps     int                `json:"steps"`
	}
	must(t, json.Unmarshal([]byte(mustEval[string](t, ctx, `document.querySelector('#run-spec-json').textContent`)), &ran))
	if ran.Reweights["blue"] != 1.5 || len(ran.Blend) != 1 || ran.Blend[0] != "blue" || ran.Steps != 10 {
		t.Errorf("the server ran %+v; want reweights {blue: 1.5}, blend [blue], 10 steps", ran)
	}

	// Hovering the word overlays its attention on the edited image.
	must(t, chromedp.Do(ctx, chromedp.Focus(chromedp.CSS(`#words-0 [data-key="blue"]`))))
	poll(t, ctx, `document.querySelector('#heat-1').dataset.word === 'blue' && document.querySelector('#heat-1').width > 1`, 5*time.Second)
	must(t, chromedp.Do(ctx, chromedp.Focus(chromedp.CSS("#run"))))
	poll(t, ctx, `document.querySelector('#heat-1').dataset.word === ''`, 5*time.Second)
}
