//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
)

// TestValidationWhereTheUserTypes is item 7 of issue 20: settings are
// checked as they change, with the allowed range beside them, in the
// user's words; a refused Run keeps the previous results; the seed takes
// digits only and shows its whole number; no message overflows its box.
func TestValidationWhereTheUserTypes(t *testing.T) {
	ctx := tab(t)
	openEditor(t, ctx, srv.URL+"/")
	setField(t, ctx, "steps", "6")
	before := runAndWait(t, ctx, 2)

	if r := mustEval[string](t, ctx, `document.querySelector('#steps-range').textContent`); r != "1–150" {
		t.Errorf("steps range %q", r)
	}
	setField(t, ctx, "steps", "1000")
	poll(t, ctx, `!!document.querySelector('.field-error[data-field=steps]')`, 5*time.Second)
	if e := fieldErrorText(t, ctx, "steps"); e != "Steps must be 1–150 (it is 1000)." {
		t.Errorf("steps 1000: %q", e)
	}
	setField(t, ctx, "guidance", "-5")
	poll(t, ctx, `!!document.querySelector('.field-error[data-field=guidance]')`, 5*time.Second)
	if e := fieldErrorText(t, ctx, "guidance"); e != "Guidance must be 0–30 (it is -5)." {
		t.Errorf("guidance -5: %q", e)
	}
	setField(t, ctx, "seed", "-3")
	poll(t, ctx, `!!document.querySelector('.field-error[data-field=seed]')`, 5*time.Second)
	if e := fieldErrorText(t, ctx, "seed"); !strings.Contains(e, "“-3” is not a seed") || strings.Contains(e, "required") {
		t.Errorf("seed -3: %q", e)
	}

	// Run is refused in words, and the previous images stay.
	must(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#run"))))
	poll(t, ctx, `document.querySelector('#run-status').dataset.phase === 'refused'`, 5*time.Second)
	if s := mustEval[string](t, ctx, `document.querySelector('#run-status').textContent`); !strings.HasPrefix(s, "Not run: Steps must be 1–150") || strings.Contains(s, "invalid edit spec") {
		t.Errorf("run status %q", s)
	}
	if kept := mustEval[[]string](t, ctx, `Array.from(document.querySelectorAll('#results .tile[data-row]')).map(e => e.dataset.hash)`); !equal(kept, before) {
		t.Errorf("the refused run left %v on screen, not the previous %v", kept, before)
	}
	overflowing := `Array.from(document.querySelectorAll('.field-error, .notice, #run-status')).filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent)`
	if o := mustEval[[]string](t, ctx, overflowing); len(o) > 0 {
		t.Errorf("messages overflow their box: %q", o)
	}

	// A ten-digit seed shows whole, at desktop and at phone width.
	setField(t, ctx, "seed", "2868141340")
	setField(t, ctx, "steps", "6")
	setField(t, ctx, "guidance", "")
	poll(t, ctx, `!document.querySelector('.field-error')`, 5*time.Second)
	for _, width := range []int64{1280, 390} {
		must(t, chromedp.Do(ctx, chromedp.EmulateViewport(width, 900)))
		poll(t, ctx, fmt.Sprintf(`window.innerWidth === %d`, width), 5*time.Second)
		if mustEval[bool](t, ctx, `(() => { const s = document.querySelector('#seed'); return s.value !== '2868141340' || s.scrollWidth > s.clientWidth })()`) {
			t.Errorf("at %d px the seed field does not show all of 2868141340", width)
		}
		if o := mustEval[[]string](t, ctx, overflowing); len(o) > 0 {
			t.Errorf("at %d px messages overflow their box: %q", width, o)
		}
	}
	must(t, chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)))
	runAndWait(t, ctx, 2)
	if s := mustEval[string](t, ctx, `JSON.parse(document.querySelector('#run-spec-json').textContent).seed + ''`); s != "2868141340" {
		t.Errorf("ran seed %s", s)
	}
}

// TestSelectingTextOpensNoPanel is item 8 of issue 20: selecting a
// prompt's text (Ctrl+A, a drag) leaves the word panel closed and Run
// where it was; a click on a word opens it.
func TestSelectingTextOpensNoPanel(t *testing.T) {
	ctx := tab(t)
	openEditor(t, ctx, srv.URL+"/")
	runTop := `document.querySelector('#run').getBoundingClientRect().top`
	top := mustEval[float64](t, ctx, runTop)

	must(t, chromedp.Do(ctx, chromedp.Focus(chromedp.CSS("#target-0")),
		chromedp.KeyEvent("a", chromedp.KeyModifiers(chromedp.ModifierCtrl))))
	poll(t, ctx, `(() => { const a = document.querySelector('#target-0'); return a.selectionEnd - a.selectionStart === a.value.length })()`, 5*time.Second)
	// A drag across the source prompt.
	r := mustEval[map[string]float64](t, ctx, `(() => { const r = document.querySelector('#source').getBoundingClientRect(); return {x: r.left, y: r.top + 12, w: r.width} })()`)
	must(t, chromedp.Do(ctx,
		chromedp.MouseEvent(input.DispatchMouseEventTypeMousePressed, r["x"]+4, r["y"], chromedp.ButtonLeft, chromedp.ClickCount(1)),
		chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, r["x"]+r["w"]/2, r["y"], chromedp.ButtonLeft),
		chromedp.MouseEvent(input.DispatchMouseEventTypeMouseMoved, r["x"]+r["w"]-4, r["y"], chromedp.ButtonLeft),
		chromedp.MouseEvent(input.DispatchMouseEventTypeMouseReleased, r["x"]+r["w"]-4, r["y"], chromedp.ButtonLeft, chromedp.ClickCount(1))))
	poll(t, ctx, `(() => { const a = document.querySelector('#source'); return document.activeElement === a && a.selectionEnd > a.selectionStart })()`, 5*time.Second)
	// Events are handled in order: once a later change is drawn (a
	// problem under a field), a panel opened by the selections would be too.
	setField(t, ctx, "guidance", "-5")
	poll(t, ctx, `!!document.querySelector('.field-error[data-field=guidance]')`, 5*time.Second)
	if mustEval[bool](t, ctx, `!!document.querySelector('#word-panel')`) {
		t.Error("selecting text opened the word panel")
	}
	if now := mustEval[float64](t, ctx, runTop); now != top {
		t.Errorf("Run moved from %v to %v px", top, now)
	}
	clickWhenThere(t, ctx, `#words-0 [data-key="circle"]`)
	poll(t, ctx, `document.querySelector('#word-panel-word')?.textContent === 'circle'`, 5*time.Second)
}

// TestSettingsMenusBackToDefault: choosing a menu's default option again
// leaves the setting to the model. (The default options once had no value
// attribute, so the browser took their text, "ddim (default)", for the
// value, which the server refused.)
func TestSettingsMenusBackToDefault(t *testing.T) {
	ctx := tab(t)
	openEditor(t, ctx, srv.URL+"/")
	setField(t, ctx, "steps", "3")
	for id, other := range map[string]string{"scheduler": "ddim", "self-max-tokens": "64", "replace-tail": "reference"} {
		choose(t, ctx, id, other)
		choose(t, ctx, id, mustEval[string](t, ctx, `document.querySelector('#`+id+` option').value`))
	}
	for _, field := range []string{"scheduler", "self_max_tokens", "replace_tail"} {
		if p := fieldErrorText(t, ctx, field); p != "" {
			t.Errorf("%s back to its default: %s", field, p)
		}
	}
	runAndWait(t, ctx, 2)
	var ran map[string]any
	must(t, json.Unmarshal([]byte(mustEval[string](t, ctx, `document.querySelector('#run-spec-json').textContent`)), &ran))
	if ran["scheduler"] != "ddim" || ran["self_max_tokens"] != nil || ran["replace_tail"] != nil {
		t.Errorf("ran scheduler %v, self_max_tokens %v, replace_tail %v; want the model's ddim and neither of the others", ran["scheduler"], ran["self_max_tokens"], ran["replace_tail"])
	}
}
