//go:build e2e

package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestHistoryRestoresWholeRuns is item 1 of issue 20: opening a past run
// sets every control to what it ran with (the form showed one run's steps
// while Run used another's), each thumbnail says its prompt and seed,
// every entry stays reachable, and the history survives a reload.
func TestHistoryRestoresWholeRuns(t *testing.T) {
	// A browser context of its own: the history lives in the browser's
	// storage, which other tests' runs would fill.
	ctx := tab(t, chromedp.WithNewBrowserContext())
	openEditor(t, ctx, srv.URL+"/")

	// Run 1 sets everything; run 2 leaves the settings to the model.
	setPrompt(t, ctx, "target-0", "a blue circle")
	for id, v := range map[string]string{"steps": "6", "guidance": "9", "cross": "0.7", "self": "0.3", "negative": "blurry", "seed": "11"} {
		setField(t, ctx, id, v)
	}
	first := runAndWait(t, ctx, 2)
	setPrompt(t, ctx, "target-0", "a blue square")
	for id, v := range map[string]string{"steps": "5", "guidance": "", "cross": "", "self": "", "negative": "", "seed": "12"} {
		setField(t, ctx, id, v)
	}
	runAndWait(t, ctx, 2)
	poll(t, ctx, `document.querySelectorAll('#history .history-item').length === 2`, 5*time.Second)

	fields := `JSON.stringify(['target-0', 'steps', 'guidance', 'cross', 'self', 'negative', 'seed'].map(id => document.getElementById(id).value))`
	// The older entry is second (newest first).
	clickWhenThere(t, ctx, "#history-1")
	poll(t, ctx, fields+` === '["a blue circle","6","9","0.7","0.3","blurry","11"]'`, 5*time.Second)
	// Run uses exactly what the form shows: the same images, from the cache.
	again := runAndWait(t, ctx, 2)
	if !equal(again, first) {
		t.Errorf("running the restored settings gave %v, the first run %v", again, first)
	}
	var ran struct {
		Steps    int     `json:"steps"`
		Guidance float64 `json:"guidance"`
		Cross    float64 `json:"cross"`
		Self     float64 `json:"self"`
		Negative string  `json:"negative"`
		Seed     uint64  `json:"seed"`
	}
	must(t, json.Unmarshal([]byte(mustEval[string](t, ctx, `document.querySelector('#run-spec-json').textContent`)), &ran))
	if ran.Steps != 6 || ran.Guidance != 9 || ran.Cross != 0.7 || ran.Self != 0.3 || ran.Negative != "blurry" || ran.Seed != 11 {
		t.Errorf("the restored run ran %+v", ran)
	}
	// The run that used the defaults restores them as values (the tiny
	// model's guidance is 4), not as the previous entry's text left in the
	// fields.
	clickWhenThere(t, ctx, "#history-1")
	poll(t, ctx, fields+` === '["a blue square","5","4","1","0.4","","12"]'`, 5*time.Second)
	if s := mustEval[string](t, ctx, `document.querySelector('#row-1 .seed').textContent`); s != "seed 12" {
		t.Errorf("the restored run's card says %q", s)
	}

	captions := mustEval[[]string](t, ctx, `Array.from(document.querySelectorAll('#history .history-item')).map(b => b.textContent)`)
	if len(captions) != 3 || !strings.Contains(captions[1], "a blue square") || !strings.Contains(captions[1], "seed 12") ||
		!strings.Contains(captions[2], "a blue circle") || !strings.Contains(captions[2], "seed 11") {
		t.Errorf("thumbnails say %q; want each one's prompt and seed", captions)
	}

	// A reload keeps the history, and reads one that an earlier build kept
	// (v2, whose echoes left an unused norm window out, and ran the
	// swapped words at cross, and blended on no changed words) as it ran:
	// moved to v6 with the window off, cross_changed at each entry's cross,
	// blend_changed off, decode_norm own and blend_reweighted off. Twelve entries (copies of these with other
	// seeds, stored as v2) do not fit one row: every one must still be on
	// the page, none clipped or hidden in a scroller.
	mustEval[bool](t, ctx, `(() => { const h = JSON.parse(localStorage.getItem('reword.history.v6'));
		const more = []; for (let i = 0; i < 12; i++) { const e = JSON.parse(JSON.stringify(h[i % h.length])); e.spec.seed = 1000 + i;
			delete e.spec.norm; delete e.spec.cross_changed; delete e.spec.blend_changed; delete e.spec.decode_norm; delete e.spec.blend_reweighted; more.push(e) }
		localStorage.removeItem('reword.history.v6'); localStorage.setItem('reword.history.v2', JSON.stringify(more)); return true })()`)
	openEditor(t, ctx, srv.URL+"/")
	poll(t, ctx, `document.querySelectorAll('#history .history-item').length === 12`, 10*time.Second)
	if !mustEval[bool](t, ctx, `localStorage.getItem('reword.history.v2') === null &&
		JSON.parse(localStorage.getItem('reword.history.v6')).every(e => e.spec.norm === 0 && JSON.stringify(e.spec.cross_changed) === JSON.stringify(e.spec.cross) && e.spec.blend_changed === false && e.spec.decode_norm === 'own' && e.spec.blend_reweighted === false)`) {
		t.Error("the v2 history was not moved to v6 with the norm window off, the swapped words at cross, blend_changed off, decode_norm own and blend_reweighted off")
	}
	clipped := mustEval[[]string](t, ctx, `(() => { const g = document.querySelector('#history .history-grid').getBoundingClientRect();
		return Array.from(document.querySelectorAll('#history .history-item')).filter(b => { const r = b.getBoundingClientRect();
			return r.left < g.left - 0.5 || r.right > g.right + 0.5 || r.width === 0 }).map(b => b.id) })()`)
	if len(clipped) > 0 || mustEval[bool](t, ctx, `(() => { const g = document.querySelector('#history .history-grid'); return g.scrollWidth > g.clientWidth })()`) {
		t.Errorf("history entries %v are outside the grid, or it scrolls sideways", clipped)
	}
	poll(t, ctx, `Array.from(document.querySelectorAll('#history img')).every(i => i.complete && i.naturalWidth > 0)`, 10*time.Second)
	// The last entry is a copy of the first run, with seed 1011.
	clickWhenThere(t, ctx, "#history-11")
	poll(t, ctx, fields+` === '["a blue circle","6","9","0.7","0.3","blurry","1011"]' && document.querySelector('#norm').value === '0'`, 5*time.Second)
}
