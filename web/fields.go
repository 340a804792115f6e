package web

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"

	"reword/shared/clip"
	"reword/shared/edit"
)

// fieldProblem is one complaint about a field, as a sentence the form
// shows next to it.
type fieldProblem struct {
	Field, Sentence string
}

// checkSpec checks the edit the way the server will (edit.Spec.Validate on
// the spec Run sends, or edit.Spec.CheckFields before the model is known)
// and words each problem for the form: "Steps must be 1–150 (it is 1000)".
// Problems come in the order of the form.
func checkSpec(tok *clip.Tokenizer, s edit.Spec, d *edit.Defaults) []fieldProblem {
	r := runnable(tok, s)
	var probs edit.Problems
	if d != nil {
		if err := r.Validate(*d); err != nil && !errors.As(err, &probs) {
			return []fieldProblem{{Field: "", Sentence: err.Error()}}
		}
	} else {
		probs = r.CheckFields()
	}
	photo := s.Image != ""
	var out []fieldProblem
	if photo && len(tok.Encode(s.Source).IDs) <= 2 {
		out = append(out, fieldProblem{"source", "Describe the photo as it is: the caption is what the photo is inverted with."})
	}
	for _, p := range probs {
		if photo && p.Field == "source" && len(out) > 0 {
			continue // said above, in the words of a caption
		}
		out = append(out, fieldProblem{p.Field, sentence(fieldLabel(p.Field, photo), p.Message)})
	}
	return out
}

// formRank orders spec fields as the form shows them: prompts, word
// settings, the settings from steps to the negative prompt, the photo.
func formRank(field string) int {
	order := []string{"source", "targets", "kinds", "reweights", "cross_words", "blend",
		"steps", "guidance", "seed", "scheduler", "cross", "cross_changed", "self", "self_max_tokens", "replace_tail", "norm", "negative", "width", "height", "model", "image", "inversion"}
	for i, f := range order {
		if field == f || strings.HasPrefix(field, f+"[") || strings.HasPrefix(field, f+".") {
			return i
		}
	}
	return len(order)
}

// sentence puts a field's label before a predicate about it.
func sentence(label, predicate string) string {
	s := label + " " + predicate
	if !strings.HasSuffix(s, ".") {
		s += "."
	}
	return s
}

// fieldLabel names a spec field (a path of edit.Problem) the way the form
// does.
func fieldLabel(field string, photo bool) string {
	if i := strings.Index(field, `["`); i >= 0 && strings.HasSuffix(field, `"]`) {
		if word, err := strconv.Unquote(field[i+1 : len(field)-1]); err == nil {
			return "“" + word + "”"
		}
	}
	var n int
	if _, err := fmt.Sscanf(field, "targets[%d]", &n); err == nil {
		return editName(n)
	}
	if _, err := fmt.Sscanf(field, "kinds[%d]", &n); err == nil {
		return "The kind of " + editName(n)
	}
	if _, err := fmt.Sscanf(field, "blend[%d]", &n); err == nil {
		if strings.HasSuffix(field, ".exclude") {
			return "The local blend of " + editName(n) + " (excluded words)"
		}
		return "The local blend of " + editName(n)
	}
	switch field {
	case "source":
		if photo {
			return "Caption"
		}
		return "Source prompt"
	case "targets":
		return "Edited prompts"
	case "negative":
		return "Negative prompt"
	case "seed":
		return "Seed"
	case "steps":
		return "Steps"
	case "guidance":
		return "Guidance"
	case "scheduler":
		return "Sampler"
	case "cross":
		return "Cross-replace until"
	case "cross_changed":
		return "Swapped words until"
	case "self":
		return "Self-replace until"
	case "width", "height":
		return "Size"
	case "model":
		return "Model"
	case "image":
		return "Photo"
	case "inversion":
		return "Inversion"
	case "blend":
		return "Local blend"
	case "kinds":
		return "Edit kinds"
	case "replace_tail":
		return "Replace tail"
	case "self_max_tokens":
		return "Self-attention layers"
	case "norm":
		return "Source's GroupNorm means until"
	}
	return field
}

// editName is what the form and the results call target i.
func editName(i int) string { return "Edit " + strconv.Itoa(i+1) }

// The text parsers read what a user typed into a setting. Empty text means
// the model's default (nil, no problem); text that is not a value gives a
// problem worded as a predicate of the field, and no value.

// parseSeedText reads the seed field: digits only, up to the largest
// 64-bit seed.
func parseSeedText(text string) (*uint64, string) {
	text = strings.TrimSpace(text)
	if text == "" {
		return nil, ""
	}
	if strings.IndexFunc(text, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return nil, fmt.Sprintf("takes digits only: “%s” is not a seed (use a whole number from 0 to %d)", shorten(text), uint64(math.MaxUint64))
	}
	v, err := strconv.ParseUint(text, 10, 64)
	if err != nil {
		return nil, fmt.Sprintf("is too large: the largest seed is %d", uint64(math.MaxUint64))
	}
	return &v, ""
}

// parseIntText reads a whole number (steps).
func parseIntText(text string) (*int, string) {
	text = strings.TrimSpace(text)
	if text == "" {
		return nil, ""
	}
	n, err := strconv.Atoi(text)
	if err != nil {
		return nil, fmt.Sprintf("must be a whole number (“%s” is not)", shorten(text))
	}
	return &n, ""
}

// parseFloatText reads a number (guidance, windows).
func parseFloatText(text string) (*float64, string) {
	text = strings.TrimSpace(text)
	if text == "" {
		return nil, ""
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Sprintf("must be a number (“%s” is not)", shorten(text))
	}
	return &f, ""
}

// shorten shortens typed text quoted in a message, so that no message grows
// with what was pasted into a field.
func shorten(text string) string {
	const max = 24
	r := []rune(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, text))
	if len(r) > max {
		return string(r[:max]) + "…"
	}
	return string(r)
}

// rangeHint is the allowed range shown beside a numeric setting.
func rangeHint(field string) string {
	switch field {
	case "steps":
		return fmt.Sprintf("%d–%d", edit.MinSteps, edit.MaxSteps)
	case "guidance":
		return fmt.Sprintf("%v–%v", edit.MinGuidance, edit.MaxGuidance)
	case "cross", "cross_changed", "self", "norm":
		return "0–1"
	case "seed":
		return "digits only; the same seed gives the same source image"
	}
	return ""
}

// windowHint explains a replacement window in a line, with the fraction
// that applies: the field's, else the model default's.
func windowHint(field string, w *edit.Window) string {
	switch field {
	case "self":
		return "Keeps the source's shapes for " + windowPart(w) + " of the steps."
	case "cross_changed":
		// Said against the cross window, which the same words would
		// otherwise follow: the field only splits the swapped words off it.
		return "The swapped words keep the source's attention maps for " + windowPart(w) +
			" of the steps; the other words keep them for the cross-replace window."
	}
	return "Keeps the source's layout for " + windowPart(w) + " of the steps."
}

// windowPart names the steps of a window; the percentages keep their sign
// on their line (a no-break space).
func windowPart(w *edit.Window) string {
	switch {
	case w == nil:
		return "the first part"
	case w.Start == 0 && w.End >= 1:
		return "all"
	case w.Start == 0:
		return fmt.Sprintf("the first %d\u00a0%%", int(math.Round(w.End*100)))
	}
	return fmt.Sprintf("%d–%d\u00a0%%", int(math.Round(w.Start*100)), int(math.Round(w.End*100)))
}

// normHint explains the norm window: the field's value when set, else the
// model's default (def; nil until the server says).
func normHint(value, def *edit.Window) string {
	switch {
	case value != nil && value.End <= value.Start:
		return "Off: this window holds no steps."
	case value != nil:
		return "The edits' GroupNorms centre on the source's means for " + windowPart(value) + " of the steps: " + normEffect
	case def == nil:
		return "The model's default applies. The edits' GroupNorms can centre on the source's means: " + normEffect
	case def.End <= def.Start:
		return "Off by default. Set, e.g. 0.4 for the first 40\u00a0% of the steps, the edits' GroupNorms centre on the source's means: " + normEffect
	}
	return "By default the edits' GroupNorms centre on the source's means for " + windowPart(def) + " of the steps (0 turns it off): " + normEffect
}

// normEffect is what the norm window is for: without it, the reworded
// words shift every group's mean, and that shift reaches the background.
const normEffect = "the reworded words change what the features are but not their overall level, " +
	"which keeps more of the background, of reweights especially."
