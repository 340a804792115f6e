package web

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"reword/shared/align"
	"reword/shared/edit"
)

// sourcePrompt is the prompt index of the source in word references;
// targets are 0, 1, ….
const sourcePrompt = -1

// wordRef names one word of one prompt.
type wordRef struct {
	Prompt int // sourcePrompt or a target index
	// Index is the word's place among its prompt's words.
	Index int
	Key   string
	// Tokens are the word's CLIP token indices in its prompt (for heat maps).
	Tokens []int
}

// PromptEditor edits the source prompt and the targets, showing under each
// target its words marked by how the edit treats them.
type PromptEditor struct {
	app.Compo

	Spec edit.Spec
	// Comparisons holds one comparison per target, in order.
	Comparisons []Comparison
	// Selected is the word whose panel is open, if any.
	Selected *wordRef
	Errors   map[string]string
	// Photo is true when the source is an uploaded photo: the source prompt
	// is then its caption.
	Photo bool

	OnSource     func(ctx app.Context, text string)
	OnTarget     func(ctx app.Context, i int, text string)
	OnAddTarget  func(ctx app.Context)
	OnDropTarget func(ctx app.Context, i int)
	// OnKind chooses target i's edit kind.
	OnKind       func(ctx app.Context, i int, c align.Choice)
	OnSelectWord func(ctx app.Context, w wordRef)
	OnHoverWord  func(ctx app.Context, w *wordRef)
}

// Render draws the prompts.
func (p *PromptEditor) Render() app.UI {
	var source []PromptWord
	if len(p.Comparisons) > 0 {
		source = p.Comparisons[0].Source
	}
	if len(p.Comparisons) > 1 {
		// The marks would tell Edit 1's diff only; each edit shows its own.
		source = plainWords(source)
	}
	sourceLabel, sourceHint := "Source prompt", "the prompt of the image to edit"
	if p.Photo {
		sourceLabel, sourceHint = "Caption", "describe the photo as it is, e.g. “a red circle on a white background”"
	}
	return app.Section().Class("prompts").Aria("label", "Prompts").Body(
		app.Div().Class("prompt source").Body(
			app.Label().For("source").Text(sourceLabel),
			app.Textarea().ID("source").Class("prompt-input").Rows(2).
				Attr("value", p.Spec.Source).
				Required(p.Photo).
				Placeholder(sourceHint).
				Aria("describedby", "source-hint").
				OnInput(func(ctx app.Context, e app.Event) { p.OnSource(ctx, ctx.JSSrc().Get("value").String()) }),
			app.P().ID("source-hint").Class("hint").Text(sourceHint),
			fieldError(p.Errors, "source"),
			p.renderWords(sourcePrompt, source),
		),
		app.Range(p.Spec.Targets).Slice(func(i int) app.UI { return p.renderTarget(i) }),
		app.If(len(p.Spec.Targets) < edit.MaxTargets, func() app.UI {
			return app.Button().ID("add-target").Class("secondary").Type("button").
				Text("+ Add an edit").
				OnClick(func(ctx app.Context, e app.Event) { p.OnAddTarget(ctx) })
		}),
		fieldError(p.Errors, "targets"),
	)
}

func (p *PromptEditor) renderTarget(i int) app.UI {
	var c Comparison
	if i < len(p.Comparisons) {
		c = p.Comparisons[i]
	}
	id := "target-" + strconv.Itoa(i)
	label := editName(i)
	kind, kindText := c.KindName()
	counter := fmt.Sprintf("%d/%d tokens", c.Tokens, MaxContentTokens)
	if c.Dropped > 0 {
		counter += fmt.Sprintf(" · %d ignored", c.Dropped)
	}
	return app.Div().Class("prompt target").Body(
		app.Div().Class("prompt-head").Body(
			app.Label().For(id).Text(label),
			app.Span().ID("edit-kind-"+strconv.Itoa(i)).Class("kind kind-"+kind).DataSet("kind", kind).
				DataSet("choice", string(p.Spec.KindOf(i))).DataSet("refused", c.Refused).Title(KindTitle(kind)).Text(kindText),
			p.renderKindChoice(i, label, kindText),
			app.Span().ID("token-count-"+strconv.Itoa(i)).Class("token-count").
				DataSet("over", c.Dropped > 0).Text(counter),
			app.If(len(p.Spec.Targets) > 1, func() app.UI {
				return app.Button().ID("drop-target-"+strconv.Itoa(i)).Class("icon-button").Type("button").
					Aria("label", "Remove "+label).Text("×").
					OnClick(func(ctx app.Context, e app.Event) { p.OnDropTarget(ctx, i) })
			}),
		),
		app.Textarea().ID(id).Class("prompt-input").Rows(2).
			Attr("value", p.Spec.Targets[i]).
			Placeholder("reword the prompt: swap, add or remove words").
			OnInput(func(ctx app.Context, e app.Event) { p.OnTarget(ctx, i, ctx.JSSrc().Get("value").String()) }),
		fieldError(p.Errors, "targets["+strconv.Itoa(i)+"]"),
		fieldError(p.Errors, "kinds["+strconv.Itoa(i)+"]"),
		p.renderWords(i, c.DiffWords()),
	)
}

// renderKindChoice is the menu next to an edit's kind badge: auto (which
// names the kind it resolved to), replace or refine. The word-count rule
// guesses wrong where a phrase changes at the same length, so the user
// has the last word.
func (p *PromptEditor) renderKindChoice(i int, label, resolved string) app.UI {
	chosen := p.Spec.KindOf(i)
	return app.Select().ID("edit-kind-choice-"+strconv.Itoa(i)).Class("kind-choice").
		Aria("label", "Kind of "+label).Title(ChoiceTitle(chosen)).
		OnChange(func(ctx app.Context, e app.Event) {
			p.OnKind(ctx, i, align.Choice(ctx.JSSrc().Get("value").String()))
		}).
		Body(app.Range(align.Choices).Slice(func(k int) app.UI {
			c := align.Choices[k]
			text := ChoiceLabel(c, resolved)
			if c == align.Auto && chosen != align.Auto {
				text = string(c) // resolved is the forced kind, not what auto would give
			}
			return app.Option().Value(string(c)).Selected(c == chosen).Title(ChoiceTitle(c)).Text(text)
		}))
}

// renderWords draws a prompt's words as buttons: colour says what the edit
// does with the word, a badge shows its reweight, and clicking opens its
// panel (and pins its heat map). Hovering (or focusing) one overlays its
// attention on the images. Words a target removed from the source are
// shown struck through where they stood; they are not buttons.
func (p *PromptEditor) renderWords(prompt int, words []PromptWord) app.UI {
	name := "source"
	if prompt != sourcePrompt {
		name = strconv.Itoa(prompt)
	}
	return app.Div().ID("words-"+name).Class("words").Aria("label", "Words of the "+promptName(prompt)).Body(
		app.Range(words).Slice(func(i int) app.UI {
			w := words[i]
			if w.FromSource {
				return app.Span().Class("word removed").DataSet("status", string(WordRemoved)).DataSet("key", w.Key).
					Title("removed: in the source prompt, not in this edit").
					Aria("label", "removed: "+w.Text).Text(w.Text)
			}
			ref := wordRef{Prompt: prompt, Index: w.Index, Key: w.Key, Tokens: w.Tokens}
			settings := wordSettings(p.Spec, w.Key)
			mark := blendMark(settings.Blend, prompt)
			selected := p.Selected != nil && p.Selected.Prompt == prompt && p.Selected.Key == w.Key
			hover := func(ctx app.Context, e app.Event) { p.OnHoverWord(ctx, &ref) }
			leave := func(ctx app.Context, e app.Event) { p.OnHoverWord(ctx, nil) }
			// The scope ties the handlers to this word: without it go-app
			// would keep the handlers (and ref) of the word first drawn here.
			scope := app.EventScope(name, i, w.Index, w.Key, fmt.Sprint(w.Tokens))
			return app.Button().Type("button").
				ID(fmt.Sprintf("word-%s-%d", name, w.Index)).
				Class("word "+string(w.Status)).
				DataSet("status", string(w.Status)).
				DataSet("key", w.Key).
				Aria("pressed", selected).
				Title(p.wordTitle(w)).
				OnClick(func(ctx app.Context, e app.Event) { p.OnSelectWord(ctx, ref) }, scope).
				OnMouseEnter(hover, scope).OnFocus(hover, scope).
				OnMouseLeave(leave, scope).OnBlur(leave, scope).
				Body(
					app.Text(w.Text),
					app.If(settings.Reweight != 1, func() app.UI {
						return app.Span().Class("weight").Text("×" + displayFactor(settings.Reweight))
					}),
					app.If(mark == blendWords, func() app.UI {
						return app.Span().Class("blend-mark").Title("local blend word: the edit changes only where it is").Text("◐")
					}),
					app.If(mark == blendExclude, func() app.UI {
						return app.Span().Class("blend-mark exclude").Title("excluded from the local blend: the edit never changes where it is").Text("⊘")
					}),
				)
		}),
	)
}

// wordTitle explains a word chip; a swapped word names the word it
// replaces.
func (p *PromptEditor) wordTitle(w PromptWord) string {
	t := statusTitle(w.Status)
	if w.Status == WordSwapped && w.Counterpart >= 0 && len(p.Comparisons) > 0 && w.Counterpart < len(p.Comparisons[0].Source) {
		t = "swapped for “" + p.Comparisons[0].Source[w.Counterpart].Text + "”: takes its place"
	}
	return t + ". Click for its settings and to pin its attention map."
}

// blendMark is the blend mark a word chip of prompt shows: its role in
// that target's blend, or for a source word its role in any target's.
func blendMark(roles []blendRole, prompt int) blendRole {
	if prompt != sourcePrompt {
		if prompt < len(roles) {
			return roles[prompt]
		}
		return blendNone
	}
	mark := blendNone
	for _, r := range roles {
		if r == blendWords {
			return r
		}
		if r != blendNone {
			mark = r
		}
	}
	return mark
}

// plainWords drops the edit's marks from words, keeping those of the
// context limit.
func plainWords(words []PromptWord) []PromptWord {
	out := make([]PromptWord, len(words))
	for i, w := range words {
		if w.Status != WordCut && w.Status != WordIgnored {
			w.Status = WordKept
		}
		out[i] = w
	}
	return out
}

func promptName(prompt int) string {
	if prompt == sourcePrompt {
		return "source prompt"
	}
	return editName(prompt)
}

func statusTitle(s WordStatus) string {
	switch s {
	case WordKept:
		return "kept: its attention follows the source"
	case WordSwapped:
		return "swapped: takes the place of the word at the same position"
	case WordInserted:
		return "added: gets its own attention"
	case WordRemoved:
		return "removed by the edited prompt"
	case WordCut:
		return "cut: only its first tokens fit in the 77-token limit"
	case WordIgnored:
		return "ignored: past the 77-token limit"
	}
	return ""
}

// formatFactor writes a reweight factor briefly: 1.5, -0.25, 2.
func formatFactor(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// displayFactor writes a factor for reading, with a real minus sign:
// "−1", not the hyphen "-1".
func displayFactor(f float64) string { return strings.Replace(formatFactor(f), "-", "−", 1) }

// fieldError shows the server's (or the editor's) complaint about a field
// right under it, announced to screen readers.
func fieldError(errs map[string]string, field string) app.UI {
	msg, ok := errs[field]
	if !ok {
		return nil
	}
	return app.P().Class("field-error").Role("alert").DataSet("field", field).Text(msg)
}
