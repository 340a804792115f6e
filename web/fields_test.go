package web

import (
	"slices"
	"strings"
	"testing"

	"reword/shared/edit"
)

func ptr[T any](v T) *T { return &v }

var tinyDefaults = &edit.Defaults{Model: "tiny", Sizes: []edit.Size{{Width: 64, Height: 64}}, Schedulers: []string{"ddim"}, Steps: 50, Guidance: 7.5,
	Cross: edit.Fraction(0.8), Self: edit.Fraction(0.4)}

// TestCheckSpecSpeaksTheUsersWords: the server's rules, checked in the
// browser, worded for the form.
func TestCheckSpecSpeaksTheUsersWords(t *testing.T) {
	tok := tokenizer(t)
	s := edit.Spec{Source: "a red circle", Targets: []string{"a blue circle", " "}, Seed: ptr(uint64(3)),
		Steps: ptr(1000), Guidance: ptr(-5.0), Scheduler: "euler"}
	got := map[string]string{}
	var order []string
	for _, p := range checkSpec(tok, s, tinyDefaults) {
		got[p.Field] = p.Sentence
		order = append(order, p.Field)
	}
	for field, want := range map[string]string{
		"targets[1]": "Edit 2 is empty: write a prompt.",
		"steps":      "Steps must be 1–150 (it is 1000).",
		"guidance":   "Guidance must be 0–30 (it is -5).",
		"scheduler":  `Sampler must be one model "tiny" runs: ddim (it is "euler").`,
	} {
		if got[field] != want {
			t.Errorf("%s: %q, want %q", field, got[field], want)
		}
	}
	if strings.Join(order, " ") != "targets[1] steps guidance scheduler" {
		t.Errorf("problems in the order %v, want the form's", order)
	}
	// Before the model is known, the model's checks wait.
	if probs := checkSpec(tok, s, nil); len(probs) != 3 {
		t.Errorf("without defaults: %v", probs)
	}
	// A photo needs a caption.
	s = edit.Spec{Source: "", Targets: []string{"a blue circle"}, Seed: ptr(uint64(3)), Image: strings.Repeat("a", 64)}
	if probs := checkSpec(tok, s, tinyDefaults); len(probs) != 1 || probs[0].Field != "source" || !strings.HasPrefix(probs[0].Sentence, "Describe the photo") {
		t.Errorf("photo without caption: %v", probs)
	}
}

func TestFieldLabels(t *testing.T) {
	for field, want := range map[string]string{
		"source": "Source prompt", "targets[0]": "Edit 1", "targets[3]": "Edit 4", "seed": "Seed",
		`reweights["cat"]`: "“cat”", `blend[1].words["grass"]`: "“grass”", "blend[2].exclude": "The local blend of Edit 3 (excluded words)",
		"cross": "Cross-replace until", "cross_changed": "Swapped words until", "width": "Size",
	} {
		if got := fieldLabel(field, false); got != want {
			t.Errorf("fieldLabel(%s) = %q, want %q", field, got, want)
		}
	}
	if fieldLabel("source", true) != "Caption" {
		t.Error("a photo's source prompt is its caption")
	}
}

// TestParseSettingText: what a user types either is a value, is empty
// (the default), or says what is wrong with it.
func TestParseSettingText(t *testing.T) {
	if v, p := parseSeedText(" 2868141340 "); v == nil || *v != 2868141340 || p != "" {
		t.Errorf("seed 2868141340: %v %q", v, p)
	}
	if v, p := parseSeedText("18446744073709551615"); v == nil || *v != 1<<64-1 || p != "" {
		t.Errorf("the largest seed: %v %q", v, p)
	}
	if v, p := parseSeedText(""); v != nil || p != "" {
		t.Errorf("empty seed: %v %q", v, p)
	}
	for in, want := range map[string]string{
		"-3":                   "takes digits only: “-3” is not a seed",
		"1e5":                  "“1e5” is not a seed",
		"18446744073709551616": "is too large",
	} {
		if v, p := parseSeedText(in); v != nil || !strings.Contains(p, want) {
			t.Errorf("seed %q: %v %q, want a problem with %q", in, v, p, want)
		}
	}
	if n, p := parseIntText("12"); n == nil || *n != 12 || p != "" {
		t.Errorf("steps 12: %v %q", n, p)
	}
	if n, p := parseIntText("1.5"); n != nil || p != "must be a whole number (“1.5” is not)" {
		t.Errorf("steps 1.5: %v %q", n, p)
	}
	if f, p := parseFloatText("NaN"); f != nil || p == "" {
		t.Errorf("guidance NaN: %v %q", f, p)
	}
	if _, p := parseSeedText(strings.Repeat("x", 200)); len(p) > 150 {
		t.Errorf("a pasted paragraph makes a %d-byte message", len(p))
	}
}

func TestWindowHint(t *testing.T) {
	if got := windowHint("cross", ptr(edit.Fraction(0.8))); got != "Keeps the source's layout for the first 80\u00a0% of the steps." {
		t.Errorf("cross: %q", got)
	}
	if got := windowHint("cross", ptr(edit.Fraction(1))); got != "Keeps the source's layout for all of the steps." {
		t.Errorf("cross 1: %q", got)
	}
	if got := windowHint("self", &edit.Window{Start: 0.2, End: 0.5}); !strings.Contains(got, "20–50\u00a0%") {
		t.Errorf("self: %q", got)
	}
	for w, want := range map[*edit.Window]string{
		ptr(edit.Fraction(0.4)): "The swapped words keep the source's attention maps for the first 40\u00a0% of the steps; the other words keep them for the cross-replace window.",
		{Start: 0.2, End: 0.5}:  "The swapped words keep the source's attention maps for 20–50\u00a0% of the steps; the other words keep them for the cross-replace window.",
		nil:                     "The swapped words keep the source's attention maps for the first part of the steps; the other words keep them for the cross-replace window.",
	} {
		if got := windowHint("cross_changed", w); got != want {
			t.Errorf("cross_changed %v: %q, want %q", w, got, want)
		}
	}
	if got := rangeHint("cross_changed"); got != "0–1" {
		t.Errorf("cross_changed's range %q, want 0–1", got)
	}
}

// TestNormField: the norm hint says for which steps the edits take the
// source's means — the field's window, else the model's default, and off
// when either holds no steps; its range is a fraction like the other
// windows', and its problems are worded with its label, in the form's
// order.
func TestNormField(t *testing.T) {
	off, early := ptr(edit.Window{}), ptr(edit.Fraction(0.4))
	for _, c := range []struct {
		value, def *edit.Window
		want       string
	}{
		{nil, off, "Off by default. Set, e.g. 0.4 for the first 40\u00a0% of the steps, the edits' GroupNorms centre on the source's means: "},
		{nil, early, "By default the edits' GroupNorms centre on the source's means for the first 40\u00a0% of the steps (0 turns it off): "},
		{nil, nil, "The model's default applies."},
		{early, off, "The edits' GroupNorms centre on the source's means for the first 40\u00a0% of the steps: "},
		{&edit.Window{Start: 0.1, End: 0.3}, early, "The edits' GroupNorms centre on the source's means for 10–30\u00a0% of the steps: "},
		{ptr(edit.Fraction(0)), early, "Off: this window holds no steps."},
		{&edit.Window{Start: 0.3, End: 0.3}, nil, "Off: this window holds no steps."},
	} {
		got := normHint(c.value, c.def)
		if !strings.HasPrefix(got, c.want) {
			t.Errorf("norm %v, default %v: %q, want %q…", c.value, c.def, got, c.want)
		}
		if strings.Contains(got, "layout") || strings.Contains(got, "shapes") {
			t.Errorf("norm %v: %q speaks of a replacement window", c.value, got)
		}
	}
	if got := normHint(early, off); !strings.HasSuffix(got, "keeps more of the background, of reweights especially.") {
		t.Errorf("norm 0.4: %q does not say what it is for", got)
	}
	for def, want := range map[*edit.Window]string{nil: "", off: "off", early: "0.4"} {
		if got := normDefaultText(def); got != want {
			t.Errorf("placeholder of default %v: %q, want %q", def, got, want)
		}
	}
	if got := rangeHint("norm"); got != "0–1" {
		t.Errorf("norm's range %q, want 0–1", got)
	}
	if got := fieldLabel("norm", false); got != "Source's GroupNorm means until" {
		t.Errorf("norm's label %q", got)
	}
	fields := []string{"negative", "norm", "self_max_tokens", "replace_tail", "self"}
	slices.SortStableFunc(fields, func(a, b string) int { return formRank(a) - formRank(b) })
	if strings.Join(fields, " ") != "self self_max_tokens replace_tail norm negative" {
		t.Errorf("norm's problem is not in the form's order: %v", fields)
	}
	s := edit.Spec{Source: "a red circle", Targets: []string{"a blue circle"}, Seed: ptr(uint64(3)), Norm: ptr(edit.Fraction(1.5))}
	probs := checkSpec(tokenizer(t), s, tinyDefaults)
	if want := "Source's GroupNorm means until must be a fraction of the steps from 0 to 1 (it is 1.5)."; len(probs) != 1 || probs[0] != (fieldProblem{"norm", want}) {
		t.Errorf("norm 1.5: %v, want %q", probs, want)
	}
}

func TestDisplayFactorUsesARealMinus(t *testing.T) {
	if displayFactor(-1) != "−1" || displayFactor(-0.5) != "−0.5" || displayFactor(1.5) != "1.5" {
		t.Errorf("%q %q %q", displayFactor(-1), displayFactor(-0.5), displayFactor(1.5))
	}
}

func TestFormRankFollowsTheForm(t *testing.T) {
	fields := []string{"seed", "steps", "targets[1]", `reweights["a"]`, "source", "negative", "guidance", "blend[0].exclude"}
	slices.SortStableFunc(fields, func(a, b string) int { return formRank(a) - formRank(b) })
	if strings.Join(fields, " ") != `source targets[1] reweights["a"] blend[0].exclude steps guidance seed negative` {
		t.Errorf("order %v", fields)
	}
	windows := []string{"norm", "self", "cross_changed", "cross", "seed"}
	slices.SortStableFunc(windows, func(a, b string) int { return formRank(a) - formRank(b) })
	if strings.Join(windows, " ") != "seed cross cross_changed self norm" {
		t.Errorf("the swapped words' window is not right after cross: %v", windows)
	}
}
