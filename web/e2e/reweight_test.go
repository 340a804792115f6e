//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"reword/shared/edit"
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
	mustEval[bool](t, ctx, `(() => { const s = document.querySelector('#word-blend-0'); s.value = 'words'; return s.dispatchEvent(new Event('change', {bubbles: true})) })()`)
	poll(t, ctx, `!!document.querySelector('#words-0 [data-key="blue"] .blend-mark')`, 5*time.Second)
	// Escape closes the panel (keyboard users).
	must(t, chromedp.Do(ctx, chromedp.Focus(chromedp.CSS("#reweight")), chromedp.KeyEvent("\u001b")))
	poll(t, ctx, `!document.querySelector('#word-panel')`, 5*time.Second)

	runAndWait(t, ctx, 2)
	var ran struct {
		Reweights map[string]float64 `json:"reweights"`
		Blend     []edit.Blend       `json:"blend"`
		Steps     int                `json:"steps"`
	}
	must(t, json.Unmarshal([]byte(mustEval[string](t, ctx, `document.querySelector('#run-spec-json').textContent`)), &ran))
	if ran.Reweights["blue"] != 1.5 || len(ran.Blend) != 1 || fmt.Sprint(ran.Blend[0].Words) != "[blue]" || ran.Steps != 10 {
		t.Errorf("the server ran %+v; want reweights {blue: 1.5}, blend [{words: [blue]}], 10 steps", ran)
	}

	// Hovering the word overlays its attention on the edited image: the
	// model's 16×16 map, upsampled to the 64×64 image, with a legend that
	// names the word and the grid next to the colour scale.
	must(t, chromedp.Do(ctx, chromedp.Focus(chromedp.CSS(`#words-0 [data-key="blue"]`))))
	poll(t, ctx, `document.querySelector('#heat-1').dataset.word === 'blue' && document.querySelector('#heat-1').width > 1`, 5*time.Second)
	heat := mustEval[map[string]any](t, ctx, `(() => {
		const c = document.querySelector('#heat-1'), l = document.querySelector('#heat-legend-1');
		const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
		const alphas = new Set();
		for (let i = 3; i < px.length; i += 4) alphas.add(px[i]);
		return {w: c.width, h: c.height, grid: c.dataset.grid, alphas: alphas.size,
			legend: !l.hidden && getComputedStyle(l).display !== 'none', word: l.querySelector('.heat-word').textContent,
			legendGrid: l.querySelector('.heat-grid').textContent, bar: getComputedStyle(l.querySelector('.heat-scale')).backgroundImage}
	})()`)
	if heat["w"] != 64.0 || heat["h"] != 64.0 || heat["grid"] != "16×16" {
		t.Errorf("overlay %v×%v from a %v map; want a 16×16 map drawn at 64×64", heat["w"], heat["h"], heat["grid"])
	}
	// A map drawn cell by cell at 64×64 would have at most 256 distinct
	// levels over 4×4 blocks; upsampling smoothly gives many more.
	if a, _ := heat["alphas"].(float64); a < 20 {
		t.Errorf("the overlay has %v distinct opacities: not a smooth field", heat["alphas"])
	}
	if heat["legend"] != true || heat["word"] != "blue" || heat["legendGrid"] != "16×16" || !strings.Contains(fmt.Sprint(heat["bar"]), "gradient") {
		t.Errorf("legend %v", heat)
	}
	must(t, chromedp.Do(ctx, chromedp.Focus(chromedp.CSS("#run"))))
	poll(t, ctx, `document.querySelector('#heat-1').dataset.word === '' && document.querySelector('#heat-legend-1').hidden`, 5*time.Second)
}
