package edit

import (
	"maps"
	"slices"

	"reword/shared/align"
	"reword/shared/clip"
)

// Words finds the words of a spec's word settings in its prompts, the one
// rule for browser and server: words match on CLIP tokens
// (align.WordTokens); reweights and cross_words apply in the targets, where
// Prompt-to-Prompt looks them up, and a target's blend words in the source
// or in that target; only an
// occurrence within the model's 77-token context counts. Validate refuses
// a setting whose word does not occur where it applies; the editor uses
// Words to show where a setting applies and to leave out the ones that no
// longer do (WithoutStrayWords).
type Words struct {
	tok     *clip.Tokenizer
	source  clip.Encoding
	targets []clip.Encoding
}

// Words prepares the word lookup of s's prompts. Prompts over
// MaxPromptBytes and targets past MaxTargets, which Validate refuses, are
// not looked up, so that the work is bounded by the limits whatever a
// client sent: a too-long prompt holds no words, and keeps its place, so
// that target i is still InBlendOf(i, …)'s target.
func (s Spec) Words(tok *clip.Tokenizer) Words {
	none := tok.Encode("")
	encode := func(prompt string) clip.Encoding {
		if len(prompt) > MaxPromptBytes {
			return none
		}
		return tok.Encode(prompt)
	}
	w := Words{tok: tok, source: encode(s.Source)}
	for _, t := range s.Targets[:min(len(s.Targets), MaxTargets)] {
		w.targets = append(w.targets, encode(t))
	}
	return w
}

// InTargets reports whether word occurs in a target prompt, and whether an
// occurrence lies within the context.
func (w Words) InTargets(word string) (found, inContext bool) {
	return w.occurs(word, w.targets)
}

// InBlendOf reports whether word occurs in the source or in target i, the
// prompts a blend word of target i is looked up in, and whether an
// occurrence lies within the context.
func (w Words) InBlendOf(i int, word string) (found, inContext bool) {
	prompts := []clip.Encoding{w.source}
	if i >= 0 && i < len(w.targets) {
		prompts = append(prompts, w.targets[i])
	}
	return w.occurs(word, prompts)
}

func (w Words) occurs(word string, prompts []clip.Encoding) (found, inContext bool) {
	for _, enc := range prompts {
		for _, i := range align.WordTokens(w.tok, enc, word) {
			found = true
			inContext = inContext || i < clip.ContextLength-1
		}
	}
	return found, inContext
}

// WithoutStrayWords returns s without the word settings whose word does
// not occur, within the context, where it applies: the spec to send and to
// link while the editor keeps those settings for a prompt being retyped.
// The word collections are copied; s is not changed.
func (s Spec) WithoutStrayWords(tok *clip.Tokenizer) Spec {
	in := s.Words(tok)
	applies := func(occurs func(string) (bool, bool)) func(string) bool {
		return func(word string) bool { _, ok := occurs(word); return ok }
	}
	inTargets := applies(in.InTargets)
	s.Reweights = maps.Clone(s.Reweights)
	maps.DeleteFunc(s.Reweights, func(w string, _ float64) bool { return !inTargets(w) })
	s.CrossWords = maps.Clone(s.CrossWords)
	maps.DeleteFunc(s.CrossWords, func(w string, _ Window) bool { return !inTargets(w) })
	blend := cloneBlends(s.Blend)
	if len(blend) > len(s.Targets) {
		blend = blend[:len(s.Targets)] // entries of targets that are gone
	}
	for i := range blend {
		stray := func(w string) bool { _, ok := in.InBlendOf(i, w); return !ok }
		blend[i].Words = slices.DeleteFunc(blend[i].Words, stray)
		blend[i].Exclude = slices.DeleteFunc(blend[i].Exclude, stray)
		if len(blend[i].Words) == 0 {
			// Excluded words narrow a blend; without words there is none.
			blend[i].Exclude = nil
		}
	}
	s.Blend = blend
	s.normalize()
	return s
}
