package web

import (
	"strconv"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"reword/shared/protocol"
)

// What the editor shows besides the form: past runs, and the words'
// attention over the images.

// openHistory shows a past result and restores every setting it ran with.
func (e *Editor) openHistory(ctx app.Context, i int) {
	if i < 0 || i >= len(e.history) {
		return
	}
	h := e.history[i]
	e.textProblems = nil
	e.selected, e.hovered = nil, nil
	s := h.restoreSpec()
	photo := e.photoOf(s.Image)
	e.changed(s)
	e.setPhoto(photo)
	res := h.Result
	shown := &runState{ID: "history", Spec: h.Spec, Phase: phaseDone, Result: &res}
	for _, img := range res.Images {
		prompt := h.Spec.Source
		role := protocol.RoleSource
		if img.Row > 0 && img.Row <= len(h.Spec.Targets) {
			prompt, role = h.Spec.Targets[img.Row-1], protocol.RoleTarget
		}
		im := img
		shown.Rows = append(shown.Rows, rowView{Index: img.Row, Role: role, Prompt: prompt, Image: &im, Step: 1, Total: 1})
	}
	e.shown, e.status = shown, shown
	e.syncInputs(ctx)
	e.refreshHeat(ctx)
}

// clearHistory forgets every past run, in the browser's storage too.
func (e *Editor) clearHistory(ctx app.Context) {
	e.history = nil
	ctx.LocalStorage().Del(historyKey)
}

// syncInputs writes the spec's values into the form's fields after the
// editor replaced the spec itself (history, a dropped edit, the dice).
// go-app leaves a field's text alone when the value it renders is empty,
// which would show the text typed before next to a spec without it.
func (e *Editor) syncInputs(ctx app.Context) {
	e.textProblems = nil
	s := e.spec
	values := map[string]string{
		"source": s.Source, "steps": intText(s.Steps), "guidance": floatText(s.Guidance),
		"cross": windowText(s.Cross), "cross_changed": windowText(s.CrossChanged), "self": windowText(s.Self), "negative": s.Negative, "scheduler": menuValue(s.Scheduler),
		"self-max-tokens": selfMenuValue(s.SelfMaxTokens), "replace-tail": tailMenuValue(s.ReplaceTail), "norm": windowText(s.Norm),
		"blend-changed": blendMenuValue(s.BlendChanged), "blend-reweighted": blendMenuValue(s.BlendReweighted), "decode-norm": menuValue(s.DecodeNorm),
	}
	if s.Seed != nil {
		values["seed"] = strconv.FormatUint(*s.Seed, 10)
	} else {
		values["seed"] = ""
	}
	for i, t := range s.Targets {
		values["target-"+strconv.Itoa(i)] = t
		values["edit-kind-choice-"+strconv.Itoa(i)] = string(s.KindOf(i))
	}
	checked := map[string]bool{"keep-source-text": s.KeepSourceText}
	ctx.Defer(func(app.Context) {
		for id, v := range values {
			if el := app.Window().GetElementByID(id); el.Truthy() && el.Get("value").String() != v {
				el.Set("value", v)
			}
		}
		for id, v := range checked {
			if el := app.Window().GetElementByID(id); el.Truthy() && el.Get("checked").Bool() != v {
				el.Set("checked", v)
			}
		}
	})
}

// selectWord opens a word's panel and pins its heat map.
func (e *Editor) selectWord(ctx app.Context, w wordRef) {
	e.selected = &w
	e.refreshHeat(ctx)
}

// closeWord closes the word panel, which unpins its heat map.
func (e *Editor) closeWord(ctx app.Context) {
	e.selected = nil
	e.refreshHeat(ctx)
}

// hover shows the hovered word's heat maps; leaving it shows the pinned
// word's again.
func (e *Editor) hover(ctx app.Context, w *wordRef) {
	e.hovered = w
	ctx.PreventUpdate()
	e.drawHeatMaps()
}

// refreshHeat redraws the heat maps once the page shows the current state.
func (e *Editor) refreshHeat(ctx app.Context) {
	ctx.Defer(func(app.Context) { e.drawHeatMaps() })
}

// drawHeatMaps overlays the attention of the hovered word, else of the
// pinned one, on the images on screen, next to its counterparts' (see
// heatOverlays), and clears the other rows.
func (e *Editor) drawHeatMaps() {
	if e.shown == nil {
		return
	}
	w, pinned := e.hovered, false
	if w == nil {
		w = e.selected
	}
	if w != nil && e.selected != nil {
		pinned = w.Prompt == e.selected.Prompt && w.Index == e.selected.Index
	}
	var overlays []heatOverlay
	if w != nil && e.shown.Result != nil {
		overlays = heatOverlays(e.comparisons, *w, e.unchanged)
	}
	drawn := map[int]bool{}
	for _, o := range overlays {
		wd, ht, values := wordHeat(e.shown.Result.HeatMaps, o.Row, o.Tokens)
		if values == nil {
			continue
		}
		iw, ih := 0, 0
		for _, r := range e.shown.Rows {
			if r.Index == o.Row && r.Image != nil {
				iw, ih = r.Image.Width, r.Image.Height
			}
		}
		drawHeat(o.Row, o.Word, pinned, wd, ht, values, iw, ih)
		drawn[o.Row] = true
	}
	for _, r := range e.shown.Rows {
		if !drawn[r.Index] {
			drawHeat(r.Index, "", false, 0, 0, nil, 0, 0)
		}
	}
}

// unchanged reports whether a row's prompt on screen is still the one the
// shown run ran (row 0 is the source): heat maps belong to the prompts as
// run.
func (e *Editor) unchanged(row int) bool {
	ran := e.shown.Spec
	if row == 0 {
		return ran.Source == e.spec.Source
	}
	i := row - 1
	return i < len(ran.Targets) && i < len(e.spec.Targets) && ran.Targets[i] == e.spec.Targets[i]
}
