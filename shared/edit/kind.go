package edit

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"reword/shared/align"
	"reword/shared/clip"
)

// Replace tails: how a word swap maps the tokens after its last swapped
// word (docs/algorithm.md, section 4.1).
const (
	// ReplaceTailAligned maps them in order, past the swapped word's
	// tokens; the default.
	ReplaceTailAligned = "aligned"
	// ReplaceTailReference maps them as the published Prompt-to-Prompt
	// code does (mapper[j, j]), which shifts them by the token difference
	// of the swapped words; for reproducing published numbers.
	ReplaceTailReference = "reference"
)

// ReplaceTails lists the accepted replace tails, the default first.
var ReplaceTails = []string{ReplaceTailAligned, ReplaceTailReference}

// KindOf returns the edit kind chosen for target i (align.Auto when none).
func (s Spec) KindOf(i int) align.Choice {
	if i < 0 || i >= len(s.Kinds) || s.Kinds[i] == "" {
		return align.Auto
	}
	return s.Kinds[i]
}

// SetKind chooses target i's edit kind, growing or trimming s.Kinds so that
// it stays canonical. It copies the list first: other copies of the spec
// may share it.
func (s *Spec) SetKind(i int, c align.Choice) {
	if i < 0 {
		return
	}
	s.Kinds = slices.Clone(s.Kinds)
	for len(s.Kinds) <= i {
		s.Kinds = append(s.Kinds, align.Auto)
	}
	s.Kinds[i] = c
	s.normalizeKinds()
}

// normalizeKinds writes "" as auto, drops trailing auto entries (a missing
// entry means the same) and the aligned replace tail (the default), so that
// equal edits have one JSON form. It never writes into the slice it was
// given, which other copies of the spec may share.
func (s *Spec) normalizeKinds() {
	if s.ReplaceTail == ReplaceTailAligned {
		s.ReplaceTail = ""
	}
	n := len(s.Kinds)
	for n > 0 && (s.Kinds[n-1] == align.Auto || s.Kinds[n-1] == "") {
		n--
	}
	if n == 0 {
		s.Kinds = nil
		return
	}
	if !slices.Contains(s.Kinds[:n], "") {
		s.Kinds = s.Kinds[:n]
		return
	}
	out := slices.Clone(s.Kinds[:n])
	for i, c := range out {
		if c == "" {
			out[i] = align.Auto
		}
	}
	s.Kinds = out
}

// checkKinds reports kinds that are unknown, more kinds than targets, a
// replace the prompts do not allow (see align.CompareAs) and an unknown
// replace tail. Only the entries of the first MaxTargets targets are
// checked: each aligns two prompts, work that the limits bound and the
// count of entries a client sends must not.
func checkKinds(s Spec, tok *clip.Tokenizer, add func(string, string, ...any)) {
	if s.ReplaceTail != "" && !slices.Contains(ReplaceTails, s.ReplaceTail) {
		add("replace_tail", "must be one of %s (it is %q)", strings.Join(ReplaceTails, ", "), abbreviate(s.ReplaceTail))
	}
	if len(s.Kinds) > len(s.Targets) {
		add("kinds", "has %d entries for %d edited prompts: one kind per edited prompt, in order", len(s.Kinds), len(s.Targets))
	}
	names := make([]string, len(align.Choices))
	for i, c := range align.Choices {
		names[i] = string(c)
	}
	var src clip.Encoding
	sourceOK := promptAligns(s.Source)
	if sourceOK {
		src = tok.Encode(s.Source)
	}
	for i, c := range s.Kinds[:min(len(s.Kinds), len(s.Targets), MaxTargets)] {
		field := fmt.Sprintf("kinds[%d]", i)
		switch {
		case c != "" && !slices.Contains(align.Choices, c):
			add(field, "must be one of %s (it is %q)", strings.Join(names, ", "), abbreviate(string(c)))
			continue
		case !sourceOK || !promptAligns(s.Targets[i]):
			continue // the prompts' own problems say enough
		}
		_, err := align.CompareAs(src, tok.Encode(s.Targets[i]), c)
		var ce *align.ChoiceError
		if errors.As(err, &ce) {
			add(field, "cannot be %s: %s", string(c), ce.Reason(fmt.Sprintf("edit %d", i+1)))
		}
	}
}

// promptAligns reports whether a prompt is fit to align: a prompt that is
// empty or over MaxPromptBytes has a problem of its own, and aligning it
// would only add work and noise.
func promptAligns(prompt string) bool {
	return strings.TrimSpace(prompt) != "" && len(prompt) <= MaxPromptBytes
}

// TakesBlendChanged reports whether blend_changed has a target to
// blend: one without blend words of its own that changes words (a swap,
// an addition or a removal; a pure reweight changes none). A target whose
// prompts cannot be aligned as its kind says is left out (validation
// reports it).
func (s Spec) TakesBlendChanged(tok *clip.Tokenizer) bool {
	return s.anyTarget(tok, func(i int, target string, d align.Diff) bool {
		return len(s.BlendOf(i).Words) == 0 && changesWords(s.Source, target, d)
	})
}

// changesWords reports whether a target, diffed with the source as d,
// changes words: what blend_changed blends it on.
func changesWords(source, target string, d align.Diff) bool {
	return len(d.ChangedWords(source, target)) > 0
}

// TakesBlendReweighted reports whether blend_reweighted has a target to
// blend: a pure reweight without blend words of its own in whose prompt
// a word is reweighted by a factor other than 1.
func (s Spec) TakesBlendReweighted(tok *clip.Tokenizer) bool {
	in := s.Words(tok)
	return s.anyTarget(tok, func(i int, _ string, d align.Diff) bool {
		return len(s.BlendOf(i).Words) == 0 && s.reweightsWords(in, i, d)
	})
}

// reweightsWords reports whether target i, diffed with the source as d,
// is a pure reweight whose prompt holds a word reweighted by a factor
// other than 1: what blend_reweighted blends it on.
func (s Spec) reweightsWords(in Words, i int, d align.Diff) bool {
	if d.Kind != align.Reweight {
		return false
	}
	for w, f := range s.Reweights {
		if found, _ := in.InBlendOf(i, w); f != 1 && found {
			return true
		}
	}
	return false
}

// BlendsImplicitly reports whether target i, given no blend words of its
// own, blends on words the spec does not name, under the model defaults
// d: on the words it changes with blend_changed (a swap, an addition or a
// removal), on the words it reweights with blend_reweighted (a pure
// reweight). Only then do excluded words alone narrow a blend. A target
// whose prompts cannot be aligned as its kind says counts as blending
// (validation reports its problem).
func (s Spec) BlendsImplicitly(tok *clip.Tokenizer, d *Defaults, i int) bool {
	changed, reweighted := s.BlendsChangedWords(d), s.BlendsReweightedWords(d)
	if !changed && !reweighted {
		return false
	}
	diff, ok := s.targetDiff(tok, tok.Encode(s.Source), i)
	if !ok {
		return true
	}
	return (changed && changesWords(s.Source, s.Targets[i], diff)) || (reweighted && s.reweightsWords(s.Words(tok), i, diff))
}

// targetDiff is target i's diff with the source (encoded as src) as its
// kind aligns them, and false for a target that cannot be aligned so: out
// of range, a prompt unfit to align or a kind the prompts refuse.
func (s Spec) targetDiff(tok *clip.Tokenizer, src clip.Encoding, i int) (align.Diff, bool) {
	if i < 0 || i >= len(s.Targets) || !promptAligns(s.Source) || !promptAligns(s.Targets[i]) {
		return align.Diff{}, false
	}
	d, err := align.CompareAs(src, tok.Encode(s.Targets[i]), s.KindOf(i))
	return d, err == nil
}

// anyTarget reports whether has holds for some target i, given its diff
// with the source as its kind aligns them. A target whose prompts cannot
// be aligned as its kind says is left out (validation reports it).
func (s Spec) anyTarget(tok *clip.Tokenizer, has func(i int, target string, d align.Diff) bool) bool {
	if !promptAligns(s.Source) {
		return false
	}
	src := tok.Encode(s.Source)
	for i, t := range s.Targets[:min(len(s.Targets), MaxTargets)] {
		if d, ok := s.targetDiff(tok, src, i); ok && has(i, t, d) {
			return true
		}
	}
	return false
}

// SwapsWords reports whether some target is a word swap that changes a
// word: whether the spec has tokens for cross_changed to apply to. A
// target whose prompts cannot be aligned as its kind says is left out
// (validation reports it).
func (s Spec) SwapsWords(tok *clip.Tokenizer) bool {
	return s.anyTarget(tok, func(_ int, _ string, d align.Diff) bool {
		return d.Kind == align.Replace && slices.Contains(d.TargetChanged, true)
	})
}
