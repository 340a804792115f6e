package web

import (
	"strconv"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"reword/shared/edit"
)

// WordPanel is the small panel of one word: its reweight, its own
// cross-replace window, and its part in each edit's local blend.
type WordPanel struct {
	app.Compo

	Word     wordRef
	Settings WordSettings
	// InTargets is false for a word only the source has: Prompt-to-Prompt
	// reweights and times only words of the edited prompts.
	InTargets bool
	// BlendTargets lists the edits whose local blend can use the word (it
	// occurs in the source or in the edit).
	BlendTargets []int
	// NeedsWords lists the edits that exclude words but have no blend
	// word, so that their exclusion does nothing yet.
	NeedsWords []int
	// GlobalCross is the cross window the word follows without its own
	// (nil when the model default is not known yet).
	GlobalCross *edit.Window
	Errors      map[string]string

	// OnChange gets how to change the word's settings; the editor applies
	// it to the settings in its current spec (see Controls.OnChange).
	OnChange func(ctx app.Context, update func(WordSettings) WordSettings)
	OnClose  func(ctx app.Context)
}

// Render draws the panel.
func (p *WordPanel) Render() app.UI {
	// Handlers never use a copy from this render: go-app keeps an element's
	// first handler while its code stays the same.
	s := p.Settings
	key := strconv.Quote(p.Word.Key)
	crossEnd := p.crossEnd()
	return app.Div().ID("word-panel").Class("word-panel").Role("dialog").
		Aria("label", "Settings of the word "+p.Word.Key).
		OnKeyDown(func(ctx app.Context, e app.Event) {
			if e.Get("key").String() == "Escape" {
				p.OnClose(ctx)
			}
		}).
		Body(
			app.Div().Class("panel-head").Body(
				app.Strong().ID("word-panel-word").Text(p.Word.Key),
				app.Button().ID("word-panel-close").Class("icon-button").Type("button").
					Aria("label", "Close the word panel").Text("×").
					OnClick(func(ctx app.Context, e app.Event) { p.OnClose(ctx) }),
			),
			app.If(!p.InTargets, func() app.UI {
				return app.P().Class("hint").Text("Reweighting and word windows apply to words of the edited prompts; this word is only in the source.")
			}),
			app.Div().Class("inline-field").Body(
				app.Label().For("reweight").Body(
					app.Text("Reweight "),
					app.Output().ID("reweight-value").For("reweight").Text("×"+displayFactor(s.Reweight)),
				),
				app.Button().ID("reweight-reset").Class("secondary small").Type("button").
					Disabled(s.Reweight == 1 || !p.InTargets).
					OnClick(func(ctx app.Context, e app.Event) {
						p.OnChange(ctx, func(s WordSettings) WordSettings { s.Reweight = 1; return s })
					}).
					Text("Reset to ×1"),
			),
			app.Input().ID("reweight").Type("range").
				Min(edit.UIMinReweight).Max(edit.UIMaxReweight).Step(0.1).
				Value(formatFactor(s.Reweight)).Disabled(!p.InTargets).
				Aria("valuetext", "times "+displayFactor(s.Reweight)).
				OnInput(func(ctx app.Context, e app.Event) {
					v, err := strconv.ParseFloat(ctx.JSSrc().Get("value").String(), 64)
					if err != nil {
						return
					}
					p.OnChange(ctx, func(s WordSettings) WordSettings { s.Reweight = roundTenth(v); return s })
				}),
			fieldError(p.Errors, "reweights["+key+"]"),
			app.Label().Class("check").Body(
				app.Input().ID("word-cross-own").Type("checkbox").Checked(s.Cross != nil).Disabled(!p.InTargets).
					OnChange(func(ctx app.Context, e app.Event) {
						var cross *edit.Window
						if ctx.JSSrc().Get("checked").Bool() {
							cross = &edit.Window{End: p.crossEnd()}
						}
						p.OnChange(ctx, func(s WordSettings) WordSettings { s.Cross = cross; return s })
					}),
				app.Text(" Own cross-replace window"),
			),
			app.If(s.Cross != nil, func() app.UI {
				return app.Div().Class("inline-field").Body(
					app.Label().For("word-cross-end").Text("until"),
					app.Input().ID("word-cross-end").Type("range").Min(0).Max(1).Step(0.05).
						Value(formatFactor(crossEnd)).
						OnInput(func(ctx app.Context, e app.Event) {
							v, err := strconv.ParseFloat(ctx.JSSrc().Get("value").String(), 64)
							if err != nil {
								return
							}
							p.OnChange(ctx, func(s WordSettings) WordSettings { s.Cross = &edit.Window{End: v}; return s })
						}),
					app.Output().For("word-cross-end").Text(strconv.Itoa(int(crossEnd*100+0.5))+"% of steps"),
				)
			}),
			fieldError(p.Errors, "cross_words["+key+"]"),
			p.renderBlend(),
		)
}

// renderBlend offers the word to the local blend of each edit it can
// delimit: an edit with blend words changes only where they are; one
// without changes everywhere.
func (p *WordPanel) renderBlend() app.UI {
	if len(p.BlendTargets) == 0 {
		return nil
	}
	return app.FieldSet().ID("word-blend").Class("blend").Body(
		app.Legend().Text("Local blend"),
		app.P().Class("hint").Text("An edit with blend words changes only where they are (in the source or in the edit); an edit without them changes everywhere."),
		app.Range(p.BlendTargets).Slice(func(k int) app.UI {
			i := p.BlendTargets[k]
			role := blendNone
			if i < len(p.Settings.Blend) {
				role = p.Settings.Blend[i]
			}
			id := "word-blend-" + strconv.Itoa(i)
			entry := "blend[" + strconv.Itoa(i) + "]"
			return app.Div().Class("blend-target").Body(
				app.Div().Class("inline-field").Body(
					app.Label().For(id).Text(editName(i)),
					app.Select().ID(id).
						OnChange(func(ctx app.Context, e app.Event) {
							v := blendRole(ctx.JSSrc().Get("value").String())
							p.OnChange(ctx, func(s WordSettings) WordSettings {
								if i < len(s.Blend) {
									s.Blend[i] = v
								}
								return s
							})
						}, app.EventScope(i)).
						Body(
							app.Option().Value(string(blendNone)).Selected(role == blendNone).Text("not used"),
							app.Option().Value(string(blendWords)).Selected(role == blendWords).Text("change only here"),
							app.Option().Value(string(blendExclude)).Selected(role == blendExclude).Text("never change here"),
						),
				),
				app.If(role == blendExclude && containsInt(p.NeedsWords, i), func() app.UI {
					return app.P().Class("hint").Text(editName(i) + " needs a blend word too: excluding only narrows a local blend.")
				}),
				fieldError(p.Errors, entry+".words["+strconv.Quote(p.Word.Key)+"]"),
				fieldError(p.Errors, entry+".exclude["+strconv.Quote(p.Word.Key)+"]"),
			)
		}),
	)
}

// crossEnd is where the word's cross window ends: its own, else the global
// one, else Prompt-to-Prompt's usual 0.8.
func (p *WordPanel) crossEnd() float64 {
	switch {
	case p.Settings.Cross != nil:
		return p.Settings.Cross.End
	case p.GlobalCross != nil:
		return p.GlobalCross.End
	}
	return 0.8
}

// roundTenth keeps slider values at the slider's resolution, so that a
// factor reads 1.5 and not 1.5000000000000002 in the spec and the link.
func roundTenth(v float64) float64 {
	r := float64(int64(v*10+sign(v)*0.5)) / 10
	if r == 0 {
		return 0 // no negative zero
	}
	return r
}

func sign(v float64) float64 {
	if v < 0 {
		return -1
	}
	return 1
}
