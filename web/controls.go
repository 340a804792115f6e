package web

import (
	"strconv"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"reword/shared/edit"
)

// schedulers are the samplers Reword's engine implements (the names of
// backend/scheduler); a model may support fewer, and the server
// says so next to the field.
var schedulers = []string{"ddim", "dpmpp-2m"}

// Controls are the global settings of an edit. An empty field takes the
// model's default, shown as its placeholder once the server has told it.
// Each field shows its allowed range, and its problem as it is typed.
type Controls struct {
	app.Compo

	Spec edit.Spec
	// Defaults are the model's, from the server's hello; they supply the
	// placeholders. Nil before the server said hello.
	Defaults *edit.Defaults
	Errors   map[string]string

	// OnChange gets how to change the spec, not a changed copy: the editor
	// applies update to its current spec. Handlers run between renders, and
	// a copy of c.Spec taken then can be older than the editor's spec (a
	// prompt typed just before), which a whole-spec copy would put back.
	OnChange func(ctx app.Context, update func(edit.Spec) edit.Spec)
	// OnText reports a field whose text is not a value ("" once it is):
	// the spec keeps its last value, and Run is refused until it is fixed.
	OnText func(ctx app.Context, field, problem string)
}

// Render draws the controls.
func (c *Controls) Render() app.UI {
	s := c.Spec // for display only: handlers change the editor's spec through OnChange
	var d edit.Defaults
	if c.Defaults != nil {
		d = *c.Defaults
	}
	seed := ""
	if s.Seed != nil {
		seed = strconv.FormatUint(*s.Seed, 10)
	}
	defaultScheduler := ""
	if len(d.Schedulers) > 0 {
		defaultScheduler = d.Schedulers[0]
	}
	cross, self := s.Cross, s.Self
	if cross == nil && c.Defaults != nil {
		cross = &d.Cross
	}
	if self == nil && c.Defaults != nil {
		self = &d.Self
	}
	return app.Section().ID("controls").Class("controls").Aria("label", "Settings").Body(
		c.field("steps", "Steps", intText(s.Steps), defaultInt(d.Steps), 1, func(v string) (func(edit.Spec) edit.Spec, string) {
			n, problem := parseIntText(v)
			return func(s edit.Spec) edit.Spec { s.Steps = n; return s }, problem
		}),
		c.field("guidance", "Guidance", floatText(s.Guidance), defaultFloat(d.Guidance, c.Defaults != nil), 0.5, func(v string) (func(edit.Spec) edit.Spec, string) {
			g, problem := parseFloatText(v)
			return func(s edit.Spec) edit.Spec { s.Guidance = g; return s }, problem
		}),
		app.Div().Class("field seed").Body(
			app.Label().For("seed").Text("Seed"),
			app.Div().Class("with-button").Body(
				// Text, not a number input: a seed has up to 20 digits, which
				// a number input shows rounded or cut, and typed text that is
				// not a seed must stay visible next to its problem.
				app.Input().ID("seed").Type("text").Attr("inputmode", "numeric").Attr("autocomplete", "off").
					Attr("spellcheck", "false").MaxLength(40).Value(seed).
					Aria("describedby", "seed-hint").
					// On every keystroke, so that Ctrl+Enter right after typing
					// runs the seed on screen.
					OnInput(func(ctx app.Context, e app.Event) {
						v, problem := parseSeedText(ctx.JSSrc().Get("value").String())
						c.OnText(ctx, "seed", problem)
						if problem == "" {
							c.OnChange(ctx, func(s edit.Spec) edit.Spec { s.Seed = v; return s })
						}
					}),
				app.Button().ID("dice").Class("icon-button").Type("button").
					Title("Pick a random seed").Text("Random").
					OnClick(func(ctx app.Context, e app.Event) {
						v := randomSeed()
						c.OnText(ctx, "seed", "")
						c.OnChange(ctx, func(s edit.Spec) edit.Spec { s.Seed = &v; return s })
					}),
			),
			app.P().ID("seed-hint").Class("hint range").Text(rangeHint("seed")),
			fieldError(c.Errors, "seed"),
		),
		app.Div().Class("field").Body(
			app.Label().For("scheduler").Text("Sampler"),
			app.Select().ID("scheduler").
				OnChange(func(ctx app.Context, e app.Event) {
					v := ctx.JSSrc().Get("value").String()
					c.OnChange(ctx, func(s edit.Spec) edit.Spec { s.Scheduler = v; return s })
				}).
				Body(
					app.Option().Value("").Selected(s.Scheduler == "").Text(defaultLabel(defaultScheduler)),
					app.Range(schedulers).Slice(func(i int) app.UI {
						return app.Option().Value(schedulers[i]).Selected(s.Scheduler == schedulers[i]).Text(schedulers[i])
					}),
				),
			fieldError(c.Errors, "scheduler"),
		),
		c.window("cross", "Cross-replace until", s.Cross, cross, d.Cross, c.Defaults != nil),
		c.window("self", "Self-replace until", s.Self, self, d.Self, c.Defaults != nil),
		app.Div().Class("field wide").Body(
			app.Label().For("negative").Text("Negative prompt"),
			app.Input().ID("negative").Type("text").Value(s.Negative).Placeholder("none").
				// On every keystroke, like the prompts: Ctrl+Enter runs what
				// the field shows.
				OnInput(func(ctx app.Context, e app.Event) {
					v := ctx.JSSrc().Get("value").String()
					c.OnChange(ctx, func(s edit.Spec) edit.Spec { s.Negative = v; return s })
				}),
			fieldError(c.Errors, "negative"),
		),
	)
}

// window is a replacement window's field with a line that says what it
// does at the fraction that applies.
func (c *Controls) window(id, label string, value, applies *edit.Window, def edit.Window, known bool) app.UI {
	placeholder := "model default"
	if known {
		placeholder = windowText(&def) + " (default)"
	}
	return app.Div().Class("field").Body(
		app.Label().For(id).Text(label),
		app.Input().ID(id).Type("number").Min(0).Max(1).Step(0.05).Value(windowText(value)).
			Placeholder(placeholder).Aria("describedby", id+"-hint").
			OnInput(c.onNumber(id, func(v string) (func(edit.Spec) edit.Spec, string) {
				f, problem := parseFloatText(v)
				var w *edit.Window
				if f != nil {
					fw := edit.Fraction(*f)
					w = &fw
				}
				return func(s edit.Spec) edit.Spec {
					if id == "self" {
						s.Self = w
					} else {
						s.Cross = w
					}
					return s
				}, problem
			})),
		app.P().ID(id+"-hint").Class("hint").Text(windowHint(id, applies)),
		app.P().Class("hint range").Text(rangeHint(id)),
		fieldError(c.Errors, id),
	)
}

// field is one numeric setting; an empty value means the model default.
// parse must not capture render-time state: go-app keeps an element's
// first handler while its code stays the same.
func (c *Controls) field(id, label, value, def string, step float64, parse func(string) (func(edit.Spec) edit.Spec, string)) app.UI {
	return app.Div().Class("field").Body(
		app.Label().For(id).Text(label),
		app.Input().ID(id).Type("number").Step(step).Value(value).
			Placeholder(defaultLabel(def)).Aria("describedby", id+"-range").
			OnInput(c.onNumber(id, parse)),
		app.P().ID(id+"-range").Class("hint range").Text(rangeHint(id)),
		fieldError(c.Errors, id),
	)
}

// onNumber reads a number input. Text the browser cannot read as a number
// reads as "" with validity.badInput set; that is a problem, not the
// default.
func (c *Controls) onNumber(id string, parse func(string) (func(edit.Spec) edit.Spec, string)) app.EventHandler {
	return func(ctx app.Context, e app.Event) {
		v := ctx.JSSrc().Get("value").String()
		if v == "" && ctx.JSSrc().Get("validity").Get("badInput").Bool() {
			c.OnText(ctx, id, "must be a number")
			return
		}
		update, problem := parse(v)
		c.OnText(ctx, id, problem)
		if problem == "" {
			c.OnChange(ctx, update)
		}
	}
}

func defaultLabel(v string) string {
	if v == "" {
		return "model default"
	}
	return v + " (default)"
}

func defaultInt(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

func defaultFloat(f float64, known bool) string {
	if !known {
		return ""
	}
	return formatFactor(f)
}

func intText(p *int) string {
	if p == nil {
		return ""
	}
	return strconv.Itoa(*p)
}

func floatText(p *float64) string {
	if p == nil {
		return ""
	}
	return formatFactor(*p)
}

func windowText(w *edit.Window) string {
	if w == nil {
		return ""
	}
	if w.Start != 0 {
		return formatFactor(w.Start) + "–" + formatFactor(w.End)
	}
	return formatFactor(w.End)
}
