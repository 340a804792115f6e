package web

import (
	"slices"
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
	// Photo is true when the source is an uploaded photo, whose default
	// self-attention layers may differ (edit.Defaults.PhotoSelfMaxTokens).
	Photo bool
	// TailShifts holds each target's Comparison.TailShift: whether the
	// replace tail changes anything in this edit.
	TailShifts []int
	// NoWordSwap is true when no edit swaps a word, so that the swapped
	// words' window applies to none.
	NoWordSwap bool

	// Models are the models to choose from (Editor.modelChoices); the
	// field shows only when there are some.
	Models []string

	// referenceOpen is whether the user opened the reference settings.
	referenceOpen bool
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
	// What an empty "Swapped words until" field runs with; unknown until
	// the server says, since the model may have a default of its own.
	var crossChangedDef *edit.Window
	if c.Defaults != nil {
		unset := s
		unset.CrossChanged = nil
		w := d.SwappedWordsCross(unset)
		crossChangedDef = &w
	}
	crossChanged := s.CrossChanged
	if crossChanged == nil {
		crossChanged = crossChangedDef
	}
	return app.Section().ID("controls").Class("controls").Aria("label", "Settings").Body(
		app.If(len(c.Models) > 0, c.modelField),
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
					v := menuSetting(ctx.JSSrc().Get("value").String())
					c.OnChange(ctx, func(s edit.Spec) edit.Spec { s.Scheduler = v; return s })
				}).
				Body(
					app.Option().Value(menuDefault).Selected(s.Scheduler == "").Text(defaultLabel(defaultScheduler)),
					app.Range(schedulers).Slice(func(i int) app.UI {
						return app.Option().Value(schedulers[i]).Selected(s.Scheduler == schedulers[i]).Text(schedulers[i])
					}),
				),
			fieldError(c.Errors, "scheduler"),
		),
		c.window("cross", "Cross-replace until", s.Cross, windowHint("cross", cross), defaultLabel(defaultWindow(d.Cross, c.Defaults != nil)),
			func(s edit.Spec, w *edit.Window) edit.Spec { s.Cross = w; return s }),
		c.window("cross_changed", "Swapped words until", s.CrossChanged, c.crossChangedHint(crossChanged), defaultLabel(windowText(crossChangedDef)),
			func(s edit.Spec, w *edit.Window) edit.Spec { s.CrossChanged = w; return s }),
		c.window("self", "Self-replace until", s.Self, windowHint("self", self), defaultLabel(defaultWindow(d.Self, c.Defaults != nil)),
			func(s edit.Spec, w *edit.Window) edit.Spec { s.Self = w; return s }),
		c.blendChanged(),
		c.blendReweighted(),
		c.decodeNorm(),
		c.reference(d, self),
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

// modelField chooses the model the edit runs on, for a server that runs
// several (or one other than the edit's link names). The spec names it;
// the model's defaults then fill the form's placeholders.
func (c *Controls) modelField() app.UI {
	chosen := c.Spec.Model
	return app.Div().Class("field").Body(
		app.Label().For("model").Text("Model"),
		app.Select().ID("model").
			OnChange(func(ctx app.Context, e app.Event) {
				v := ctx.JSSrc().Get("value").String()
				if v == menuDefault {
					v = ""
				}
				c.OnChange(ctx, func(s edit.Spec) edit.Spec { s.Model = v; return s })
			}).
			Body(
				app.If(!slices.Contains(c.Models, chosen), func() app.UI {
					label := "Choose a model"
					if chosen != "" {
						label = chosen + " (not on this server)"
					}
					return app.Option().Value(menuDefault).Selected(true).Text(label)
				}),
				app.Range(c.Models).Slice(func(i int) app.UI {
					return app.Option().Value(c.Models[i]).Selected(chosen == c.Models[i]).Text(c.Models[i])
				}),
			),
		fieldError(c.Errors, "model"),
	)
}

// window is the field of a part of the steps, from the first, with a line
// that says what it does at the fraction that applies. set puts the typed
// window into a spec, nil for an empty field; like field's parse, it must
// not capture render-time state.
func (c *Controls) window(id, label string, value *edit.Window, hint, placeholder string, set func(edit.Spec, *edit.Window) edit.Spec) app.UI {
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
				return func(s edit.Spec) edit.Spec { return set(s, w) }, problem
			})),
		app.P().ID(id+"-hint").Class("hint").Text(hint),
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

func defaultWindow(w edit.Window, known bool) string {
	if !known {
		return ""
	}
	return windowText(&w)
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

// reference holds the settings that reproduce published setups (which
// self-attention layers self-replace acts in, the replace tail) and the
// controls that keep the source's text states and its GroupNorm means,
// folded away until the user opens them or the edit sets one: the defaults
// suit most edits, and the form stays short on a phone.
func (c *Controls) reference(d edit.Defaults, self *edit.Window) app.UI {
	s := c.Spec
	_, selfProblem := c.Errors["self_max_tokens"]
	_, tailProblem := c.Errors["replace_tail"]
	_, normProblem := c.Errors["norm"]
	// A norm window opens the section only when it is not the model's
	// default, which every echo (and so every history entry) states.
	normDef := c.normDefault(d)
	normSet := s.Norm != nil && (normDef == nil || *s.Norm != *normDef)
	open := c.referenceOpen || s.SelfMaxTokens != nil || s.ReplaceTail != "" || s.KeepSourceText || normSet ||
		selfProblem || tailProblem || normProblem
	return app.Details().ID("reference-settings").Class("field wide reference-settings").Open(open).
		On("toggle", func(ctx app.Context, e app.Event) {
			// Kept here, so that the section stays as the user left it
			// when a setting inside goes back to its default.
			c.referenceOpen = ctx.JSSrc().Get("open").Bool()
			ctx.PreventUpdate()
		}).
		Body(
			app.Summary().Text("Layers, replace tail, text states and GroupNorm means"),
			c.selfLayers(d, self),
			c.replaceTail(),
			c.keepSourceText(),
			c.window("norm", "Source's GroupNorm means until", s.Norm, normHint(s.Norm, normDef), defaultLabel(normDefaultText(normDef)),
				func(s edit.Spec, w *edit.Window) edit.Spec { s.Norm = w; return s }),
		)
}

// normDefault is the model's norm window, nil until the server says.
func (c *Controls) normDefault(d edit.Defaults) *edit.Window {
	if c.Defaults == nil {
		return nil
	}
	return &d.Norm
}

// normDefaultText is the norm field's default as its placeholder shows it:
// "off" for a model without one.
func normDefaultText(def *edit.Window) string {
	switch {
	case def == nil:
		return ""
	case def.End <= def.Start:
		return "off"
	}
	return windowText(def)
}

// keepSourceText is the keep_source_text opt-in: every target takes the
// source's text states for the words it kept, so that only the reworded
// words' states differ.
func (c *Controls) keepSourceText() app.UI {
	const id = "keep-source-text"
	return app.Div().Class("field wide").Body(
		app.Label().Class("check").Body(
			app.Input().ID(id).Type("checkbox").Checked(c.Spec.KeepSourceText).Aria("describedby", id+"-hint").
				OnChange(func(ctx app.Context, e app.Event) {
					on := ctx.JSSrc().Get("checked").Bool()
					c.OnChange(ctx, func(s edit.Spec) edit.Spec { s.KeepSourceText = on; return s })
				}),
			app.Text(" Keep the source's text for unchanged words"),
		),
		app.P().ID(id+"-hint").Class("hint").Text("Off by default. On, only the reworded words' text states differ from the source's: "+
			"for a text encoder that folds every word into the words after it."),
	)
}

// selfLayers is the self_max_tokens setting, a menu of the model's
// self-attention layers by grid: a limit between two grids takes the same
// layers as the coarser one, so the grids are every choice there is.
// applies is the self-replace window that applies, for the hint.
func (c *Controls) selfLayers(d edit.Defaults, applies *edit.Window) app.UI {
	const id = "self-max-tokens"
	value := c.Spec.SelfMaxTokens
	opts := selfLayerOptions(d, value, c.Photo)
	// Full width: the choices name their grids and layer counts.
	return app.Div().Class("field wide").Body(
		app.Label().For(id).Text("Self-attention layers"),
		c.menu(id, opts, selfMenuValue(value), func(s edit.Spec, v string) edit.Spec {
			s.SelfMaxTokens = selfMaxTokensValue(v)
			return s
		}),
		app.P().ID(id+"-hint").Class("hint").Text(selfLayersHint(d, value, applies, c.Photo)),
		fieldError(c.Errors, "self_max_tokens"),
	)
}

// replaceTail is the replace_tail setting: the reference's mapping of the
// tokens after a swapped word of another token count, for reproducing
// published numbers.
func (c *Controls) replaceTail() app.UI {
	const id = "replace-tail"
	value := c.Spec.ReplaceTail
	opts := []choiceOption{
		{edit.ReplaceTailAligned, edit.ReplaceTailAligned + " (default)"},
		{edit.ReplaceTailReference, edit.ReplaceTailReference + ": as the published code"},
	}
	if value := tailMenuValue(value); value != edit.ReplaceTailAligned && value != edit.ReplaceTailReference {
		// A value a link brought: shown as it is, next to its problem.
		opts = append(opts, choiceOption{value, value})
	}
	return app.Div().Class("field wide").Body(
		app.Label().For(id).Text("Replace tail"),
		c.menu(id, opts, tailMenuValue(value), func(s edit.Spec, v string) edit.Spec {
			if v == edit.ReplaceTailAligned {
				v = "" // the default, which the spec leaves out
			}
			s.ReplaceTail = v
			return s
		}),
		app.P().ID(id+"-hint").Class("hint").Text(tailHint(c.TailShifts)),
		fieldError(c.Errors, "replace_tail"),
	)
}

// blendChanged is the blend_changed setting: whether every target that
// changes words changes only where they are (a local blend on them),
// unless the word panel blends it on words of its own.
func (c *Controls) blendChanged() app.UI {
	return c.blendMenu("blend-changed", "Blend on the changed words", "On, each edit changes only where the words it rewords are "+
		"(a local blend), and keeps the rest of the source; a word picked to blend on replaces them.",
		c.Spec.BlendChanged, func(d *edit.Defaults) bool { return d.BlendChanged },
		func(s edit.Spec, on *bool) edit.Spec { s.BlendChanged = on; return s })
}

// blendReweighted is the blend_reweighted setting: whether every pure
// reweight changes only where the words it reweights are (a local blend
// on them), unless the word panel blends it on words of its own.
func (c *Controls) blendReweighted() app.UI {
	return c.blendMenu("blend-reweighted", "Blend a reweight on its words", "On, a reweighted word changes the picture only where that word is "+
		"(a local blend), and the rest stays the source's; a word picked to blend on replaces it.",
		c.Spec.BlendReweighted, func(d *edit.Defaults) bool { return d.BlendReweighted },
		func(s edit.Spec, on *bool) edit.Spec { s.BlendReweighted = on; return s })
}

// blendMenu is an on/off/model-default menu of a blend setting: value is
// the spec's (nil: the model's), def reads the model's default once the
// server said it, and set writes a choice into a spec.
func (c *Controls) blendMenu(id, label, hint string, value *bool, def func(*edit.Defaults) bool, set func(edit.Spec, *bool) edit.Spec) app.UI {
	stated := ""
	if c.Defaults != nil {
		stated = onOff(def(c.Defaults))
	}
	opts := []choiceOption{{menuDefault, defaultLabel(stated)}, {"on", "on"}, {"off", "off"}}
	return app.Div().Class("field").Body(
		app.Label().For(id).Text(label),
		c.menu(id, opts, blendMenuValue(value), func(s edit.Spec, v string) edit.Spec { return set(s, blendMenuSetting(v)) }),
		app.P().ID(id+"-hint").Class("hint").Text(hint),
	)
}

// decodeNorm is the decode_norm setting: whether the edits decode with
// the source image's VAE-decoder statistics or each with its own.
func (c *Controls) decodeNorm() app.UI {
	const id = "decode-norm"
	def := ""
	if c.Defaults != nil {
		def = decodeNormLabel(c.Defaults.DecodeNorm)
	}
	opts := []choiceOption{{menuDefault, defaultLabel(def)}}
	for _, v := range []string{edit.DecodeNormSource, edit.DecodeNormSwaps, edit.DecodeNormOwn} {
		opts = append(opts, choiceOption{v, decodeNormLabel(v)})
	}
	return app.Div().Class("field").Body(
		app.Label().For(id).Text("Decode with the statistics of"),
		c.menu(id, opts, menuValue(c.Spec.DecodeNorm), func(s edit.Spec, v string) edit.Spec {
			s.DecodeNorm = menuSetting(v)
			return s
		}),
		app.P().ID(id+"-hint").Class("hint").Text("The source: what an edit leaves as the source's decodes to the "+
			"source's pixels; for swaps: so for word swaps and reweights, while an edit that adds words (a new "+
			"background) decodes with its own. Each its own: the decoder's statistics follow the whole edited image, "+
			"which can shift the background's tone."),
		fieldError(c.Errors, "decode_norm"),
	)
}

// decodeNormLabel is how the decode menu names a decode_norm value (""
// is each image's own).
func decodeNormLabel(v string) string {
	switch v {
	case edit.DecodeNormSource:
		return "the source"
	case edit.DecodeNormSwaps:
		return "the source, for swaps"
	}
	return "each its own"
}

// blendMenuValue is a blend menu's value for a spec's blend_changed or
// blend_reweighted.
func blendMenuValue(on *bool) string {
	if on == nil {
		return menuDefault
	}
	return onOff(*on)
}

// blendMenuSetting is the blend_changed or blend_reweighted a blend menu
// value sets (nil: the model's default).
func blendMenuSetting(v string) *bool {
	if v == menuDefault {
		return nil
	}
	on := v == "on"
	return &on
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// menu is a settings menu (its hint is id+"-hint") showing value among
// opts; choosing an option changes the spec by set with its value.
func (c *Controls) menu(id string, opts []choiceOption, value string, set func(s edit.Spec, v string) edit.Spec) app.UI {
	return app.Select().ID(id).Aria("describedby", id+"-hint").
		OnChange(func(ctx app.Context, e app.Event) {
			v := ctx.JSSrc().Get("value").String()
			c.OnChange(ctx, func(s edit.Spec) edit.Spec { return set(s, v) })
		}).
		Body(app.Range(opts).Slice(func(i int) app.UI {
			return app.Option().Value(opts[i].Value).Selected(opts[i].Value == value).Text(opts[i].Text)
		}))
}

// choiceOption is one entry of a settings menu.
type choiceOption struct {
	// Value is the option's value: the setting as the spec writes it, or
	// menuDefault. Never "": go-app leaves an empty value attribute out,
	// and the option's value is then its text.
	Value, Text string
}

// menuDefault is the value of a menu's "model default" option.
const menuDefault = "default"

// selfMenuValue is the self-attention layers menu's value for a spec's
// self_max_tokens.
func selfMenuValue(n *int) string {
	if n == nil {
		return menuDefault
	}
	return strconv.Itoa(*n)
}

// menuValue is a menu's value for a spec's optional string setting
// (scheduler, decode_norm): "" is the model's default.
func menuValue(v string) string {
	if v == "" {
		return menuDefault
	}
	return v
}

// menuSetting is the optional string setting a menu value sets: "" for
// the model's default, which the spec leaves out.
func menuSetting(v string) string {
	if v == menuDefault {
		return ""
	}
	return v
}

// tailMenuValue is the replace tail menu's value for a spec's
// replace_tail: the default is left out of a spec, and named in the menu.
func tailMenuValue(tail string) string {
	if tail == "" {
		return edit.ReplaceTailAligned
	}
	return tail
}

// selfLayerOptions are the choices of the self-attention layers menu: the
// model's default, then each grid of the model's self-attention layers
// (its position count takes it and every coarser grid), then the spec's
// value when it is none of those (a link may carry any count).
func selfLayerOptions(d edit.Defaults, value *int, photo bool) []choiceOption {
	def := "model default"
	if photo && d.PhotoSelfMaxTokens != d.SelfMaxTokens {
		// PnPInversion's layers, which photo edits take on SD-sized models.
		def = "photo default"
	}
	if n := d.DefaultSelfMaxTokens(photo); n > 0 {
		def += ": " + selfLayersText(d, n)
	}
	opts := []choiceOption{{menuDefault, def}}
	var grids []int
	for _, g := range d.SelfLayers {
		n := g.Tokens()
		grids = append(grids, n)
		opts = append(opts, choiceOption{strconv.Itoa(n), selfLayersText(d, n)})
	}
	if value != nil && !slices.Contains(grids, *value) {
		opts = append(opts, choiceOption{strconv.Itoa(*value), selfLayersText(d, *value)})
	}
	return opts
}

// selfLayersText names the layers a limit of n takes: "16×16 and coarser
// (≤ 256 positions, 10 of 10 layers)", or the bare limit when the model's
// layers are not known.
func selfLayersText(d edit.Defaults, n int) string {
	layers, of, words := d.SelfLayersWithin(n)
	if of == 0 {
		return "≤ " + strconv.Itoa(n) + " positions"
	}
	return words + " (≤ " + strconv.Itoa(n) + " positions, " + strconv.Itoa(layers) + " of " + strconv.Itoa(of) + " layers)"
}

// selfLayersHint says in a line what the setting does at the value that
// applies.
func selfLayersHint(d edit.Defaults, value *int, applies *edit.Window, photo bool) string {
	n := d.DefaultSelfMaxTokens(photo)
	if value != nil {
		n = *value
	}
	if applies != nil && applies.End <= applies.Start {
		return "Self-replace until is 0: no layer keeps the source's shapes."
	}
	layers, of, _ := d.SelfLayersWithin(n)
	switch {
	case n <= 0 || of == 0:
		return "The self-attention layers that keep the source's shapes: finer ones keep more detail and take more time."
	case layers == 0:
		return "No self-attention layer has this few positions: the source's shapes are not kept."
	}
	return "Keeps the source's shapes in " + strconv.Itoa(layers) + " of the " + strconv.Itoa(of) +
		" self-attention layers; finer ones keep more detail and take more time."
}

// selfMaxTokensValue reads the menu's value: menuDefault (or anything not
// a number) is the model's default.
func selfMaxTokensValue(v string) *int {
	n, err := strconv.Atoi(v)
	if err != nil {
		return nil
	}
	return &n
}

// tailHint says whether the replace tail matters for this edit: only a
// swap of words with different token counts maps the words after them
// differently.
func tailHint(shifts []int) string {
	var edits []string
	for i, n := range shifts {
		if n != 0 {
			edits = append(edits, editName(i))
		}
	}
	switch len(edits) {
	case 0:
		return "How a swap maps the words after swapped words of different token counts; no edit here has such a swap, so both run the same edit."
	case 1:
		return edits[0] + " swaps words of different token counts: reference shifts the words after them by the difference, as the published code does."
	}
	return strings.Join(edits, ", ") + " swap words of different token counts: reference shifts the words after them by the difference, as the published code does."
}

// crossChangedHint explains the swapped words' window w, or says that it
// applies to no word where no edit swaps one.
func (c *Controls) crossChangedHint(w *edit.Window) string {
	if c.NoWordSwap {
		return "No edit swaps a word for another, so this window applies to no word (every word keeps the cross-replace window)."
	}
	return windowHint("cross_changed", w)
}
