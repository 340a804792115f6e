package web

import (
	"strconv"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"reword/shared/edit"
)

// WordPanel is the small panel of one word: its reweight, its own
// cross-replace window, and whether it delimits a local edit.
type WordPanel struct {
	app.Compo

	Word     wordRef
	Settings WordSettings
	// InTargets is false for a word only the source has: Prompt-to-Prompt
	// reweights and times only words of the edited prompts.
	InTargets bool
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
			app.Label().For("reweight").Body(
				app.Text("Reweight "),
				app.Output().ID("reweight-value").For("reweight").Text("×"+formatFactor(s.Reweight)),
			),
			app.Input().ID("reweight").Type("range").
				Min(edit.UIMinReweight).Max(edit.UIMaxReweight).Step(0.1).
				Value(formatFactor(s.Reweight)).Disabled(!p.InTargets).
				Aria("valuetext", "times "+formatFactor(s.Reweight)).
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
			app.Label().Class("check").Body(
				app.Input().ID("word-blend").Type("checkbox").Checked(s.Blend).
					OnChange(func(ctx app.Context, e app.Event) {
						blend := ctx.JSSrc().Get("checked").Bool()
						p.OnChange(ctx, func(s WordSettings) WordSettings { s.Blend = blend; return s })
					}),
				app.Text(" Use for local blend (edit only where this word is)"),
			),
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
