package web

import (
	"strconv"
	"strings"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"reword/shared/edit"
)

// schedulers are the samplers Reword's engine implements (the names of
// backend/scheduler); a model may support fewer, and the server
// says so next to the field.
var schedulers = []string{"ddim", "dpmpp-2m"}

// Controls are the global settings of an edit. An empty field takes the
// model's default, shown as its placeholder once the server has told it.
type Controls struct {
	app.Compo

	Spec edit.Spec
	// Known is the last spec the server ran, every default filled in; it
	// supplies the placeholders. Nil before the first run.
	Known  *edit.Spec
	Errors map[string]string

	// OnChange gets how to change the spec, not a changed copy: the editor
	// applies update to its current spec. Handlers run between renders, and
	// a copy of c.Spec taken then can be older than the editor's spec (a
	// prompt typed just before), which a whole-spec copy would put back.
	OnChange func(ctx app.Context, update func(edit.Spec) edit.Spec)
}

// Render draws the controls.
func (c *Controls) Render() app.UI {
	s := c.Spec // for display only: handlers change the editor's spec through OnChange
	known := edit.Spec{}
	if c.Known != nil {
		known = *c.Known
	}
	seed := ""
	if s.Seed != nil {
		seed = strconv.FormatUint(*s.Seed, 10)
	}
	return app.Section().ID("controls").Class("controls").Aria("label", "Settings").Body(
		c.field("steps", "Steps", "number", intText(s.Steps), intText(known.Steps), "1", "150", 1, func(s edit.Spec, v string) edit.Spec {
			s.Steps = parseIntPtr(v)
			return s
		}),
		c.field("guidance", "Guidance", "number", floatText(s.Guidance), floatText(known.Guidance), "0", "30", 0.5, func(s edit.Spec, v string) edit.Spec {
			s.Guidance = parseFloatPtr(v)
			return s
		}),
		app.Div().Class("field").Body(
			app.Label().For("seed").Text("Seed"),
			app.Div().Class("with-button").Body(
				app.Input().ID("seed").Type("number").Min(0).Step(1).Attr("inputmode", "numeric").Value(seed).
					// On every keystroke, so that Ctrl+Enter right after typing runs
					// the seed on screen. A value that is not a whole number clears
					// the seed, and the server's "seed" error then shows under the
					// field instead of the previous seed running silently.
					OnInput(func(ctx app.Context, e app.Event) {
						var seed *uint64
						if v, err := strconv.ParseUint(strings.TrimSpace(ctx.JSSrc().Get("value").String()), 10, 64); err == nil {
							seed = &v
						}
						c.OnChange(ctx, func(s edit.Spec) edit.Spec { s.Seed = seed; return s })
					}),
				app.Button().ID("dice").Class("icon-button").Type("button").
					Title("Pick a random seed").Text("Random").
					OnClick(func(ctx app.Context, e app.Event) {
						v := randomSeed()
						c.OnChange(ctx, func(s edit.Spec) edit.Spec { s.Seed = &v; return s })
					}),
			),
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
					app.Option().Value("").Selected(s.Scheduler == "").Text(defaultLabel(known.Scheduler)),
					app.Range(schedulers).Slice(func(i int) app.UI {
						return app.Option().Value(schedulers[i]).Selected(s.Scheduler == schedulers[i]).Text(schedulers[i])
					}),
				),
			fieldError(c.Errors, "scheduler"),
		),
		c.field("cross", "Cross-replace until", "number", windowText(s.Cross), windowText(known.Cross), "0", "1", 0.05, func(s edit.Spec, v string) edit.Spec {
			s.Cross = parseWindowPtr(v)
			return s
		}),
		c.field("self", "Self-replace until", "number", windowText(s.Self), windowText(known.Self), "0", "1", 0.05, func(s edit.Spec, v string) edit.Spec {
			s.Self = parseWindowPtr(v)
			return s
		}),
		app.Div().Class("field wide").Body(
			app.Label().For("negative").Text("Negative prompt"),
			app.Input().ID("negative").Type("text").Value(s.Negative).Placeholder("none").
				OnChange(func(ctx app.Context, e app.Event) {
					v := ctx.JSSrc().Get("value").String()
					c.OnChange(ctx, func(s edit.Spec) edit.Spec { s.Negative = v; return s })
				}),
			fieldError(c.Errors, "negative"),
		),
	)
}

// field is one numeric setting; an empty value means the model default.
// set must not capture render-time state: go-app keeps an element's first
// handler while its code stays the same.
func (c *Controls) field(id, label, typ, value, def, min, max string, step float64, set func(edit.Spec, string) edit.Spec) app.UI {
	return app.Div().Class("field").Body(
		app.Label().For(id).Text(label),
		app.Input().ID(id).Type(typ).Min(min).Max(max).Step(step).Value(value).
			Placeholder(defaultLabel(def)).
			OnInput(func(ctx app.Context, e app.Event) {
				v := strings.TrimSpace(ctx.JSSrc().Get("value").String())
				c.OnChange(ctx, func(s edit.Spec) edit.Spec { return set(s, v) })
			}),
		fieldError(c.Errors, id),
	)
}

func defaultLabel(v string) string {
	if v == "" {
		return "model default"
	}
	return v + " (default)"
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

// The parsers return nil (the model default) for an empty or unreadable
// field; the input's own min/max keep typed values in range, and the server
// names any value it refuses.
func parseIntPtr(v string) *int {
	n, err := strconv.Atoi(v)
	if err != nil {
		return nil
	}
	return &n
}

func parseFloatPtr(v string) *float64 {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil {
		return nil
	}
	return &f
}

func parseWindowPtr(v string) *edit.Window {
	f := parseFloatPtr(v)
	if f == nil {
		return nil
	}
	w := edit.Fraction(*f)
	return &w
}
