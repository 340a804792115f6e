package align

import (
	"slices"

	"reword/shared/clip"
)

// Diff is how New aligns a target prompt with the source, in words. The
// editor shows it while the prompts are typed: since it is the match New
// builds its mappers from, the diff a user sees is the edit that runs.
type Diff struct {
	Kind Kind
	// Source and Target are the prompts' words (Words).
	Source, Target []Word
	// SourceChanged[k] is true for a source word the target swaps
	// (Replace) or drops (Refine: no target token takes its attention).
	SourceChanged []bool
	// TargetChanged[k] is true for a target word that replaces a source
	// word (Replace) or that the target adds (Refine: a token with
	// attention of its own).
	TargetChanged []bool
	// Counterpart[k] is the index of the source word that target word k
	// takes the place of: the same word, or the word it swaps; -1 for a
	// word the target adds. Editors show a word's attention next to its
	// counterpart's.
	Counterpart []int
}

// Compare aligns target with source as New does when the kind is left to
// the prompts (Auto).
func Compare(source, target clip.Encoding) Diff {
	d, _ := CompareAs(source, target, Auto) // Auto always has a kind
	return d
}

// CompareAs aligns target with source as New does for a target whose kind
// is chosen c. It returns a *ChoiceError when the prompts do not allow the
// kind chosen (a replace needs as many words in both prompts).
func CompareAs(source, target clip.Encoding, c Choice) (Diff, error) {
	m, err := matchPrompts(source, target, c)
	if err != nil {
		return Diff{}, err
	}
	return m.diff(source), nil
}

// ChangedWords returns the words d changes, each text once, source first:
// the source's swapped or dropped words (their text in source) and the
// target's swapped or added ones (in target). They are what a target
// blends on with Config.BlendChanged, as Prompt-to-Prompt's local blend
// would be given the reworded words, and are looked up as any blend word
// is (every occurrence of the text, as the reference matches words), so
// that the blend is the one a spec naming them runs.
func (d Diff) ChangedWords(source, target string) []string {
	var words []string
	add := func(text string, w Word) {
		if word := text[w.Start:w.End]; !slices.Contains(words, word) {
			words = append(words, word)
		}
	}
	for k, changed := range d.SourceChanged {
		if changed {
			add(source, d.Source[k])
		}
	}
	for k, changed := range d.TargetChanged {
		if changed {
			add(target, d.Target[k])
		}
	}
	return words
}

// diff is the match as the editor shows it; source is the prompt matched.
func (m match) diff(source clip.Encoding) Diff {
	d := Diff{Kind: m.kind, Source: m.source, Target: m.target,
		SourceChanged: make([]bool, len(m.source)), TargetChanged: make([]bool, len(m.target)),
		Counterpart: make([]int, len(m.target))}
	for k := range d.Counterpart {
		d.Counterpart[k] = k // Reweight and Replace keep the words in place
	}
	switch m.kind {
	case Replace:
		for _, k := range m.swapped {
			d.SourceChanged[k], d.TargetChanged[k] = true, true
		}
	case Refine:
		taken := make([]bool, len(source.IDs))
		for _, w := range m.aligned {
			if w >= 0 {
				taken[w] = true
			}
		}
		for k, w := range m.target {
			d.TargetChanged[k] = slices.ContainsFunc(w.Tokens, func(n int) bool { return n < len(m.aligned) && m.aligned[n] < 0 })
		}
		for k, w := range m.source {
			d.SourceChanged[k] = slices.ContainsFunc(w.Tokens, func(n int) bool { return n < n77-1 && !taken[n] })
		}
		d.Counterpart = refineCounterparts(m, d.TargetChanged)
	}
	return d
}

// refineCounterparts finds, for each target word of a Refine edit, the
// source word its first aligned token comes from (-1 for added words).
func refineCounterparts(m match, added []bool) []int {
	wordOf := make(map[int]int) // source token → source word
	for k, w := range m.source {
		for _, n := range w.Tokens {
			wordOf[n] = k
		}
	}
	out := make([]int, len(m.target))
	for k, w := range m.target {
		out[k] = -1
		if added[k] {
			continue
		}
		for _, n := range w.Tokens {
			if n >= len(m.aligned) || m.aligned[n] < 0 {
				continue
			}
			if sk, ok := wordOf[m.aligned[n]]; ok {
				out[k] = sk
				break
			}
		}
	}
	return out
}

// match is how a target prompt aligns with the source: its kind and what
// that kind's mapper is built from.
type match struct {
	kind           Kind
	source, target []Word
	// swapped lists, for Replace, the words that differ: the same index
	// in both prompts, since a swap keeps the number of words.
	swapped []int
	// aligned is, for Refine, Align of the tokens the encoder sees: per
	// target token, its source token, or −1 for a token the target added.
	aligned []int
}

// matchPrompts classifies target for the kind chosen. Auto: Reweight when
// its tokens are the source's, Replace when it is the source with some
// words swapped, Refine otherwise. A forced kind is used even where Auto
// would pick another (identical prompts give the identity mapper either
// way); Replace is refused when the prompts have no word-for-word match.
func matchPrompts(src, tgt clip.Encoding, c Choice) (match, error) {
	m := match{source: Words(src), target: Words(tgt)}
	switch c {
	case Auto, "":
		swapped, err := m.findSwaps(src, tgt)
		switch {
		case slices.Equal(src.IDs, tgt.IDs):
			m.kind = Reweight
		case err == nil && len(swapped) > 0:
			m.kind, m.swapped = Replace, swapped
		default:
			m.kind = Refine
		}
	case ForceReplace:
		swapped, err := m.findSwaps(src, tgt)
		if err != nil {
			return match{}, err
		}
		m.kind, m.swapped = Replace, swapped
	case ForceRefine:
		m.kind = Refine
	default:
		return match{}, &ChoiceError{Choice: c}
	}
	if m.kind == Refine {
		m.aligned = Align(contextIDs(src), contextIDs(tgt))
	}
	return m, nil
}

// findSwaps returns the words that tokenize differently, the same index
// in both prompts, or why the target is not the source with words swapped:
// the prompts have different numbers of words, or a differing word has no
// tokens on one side (cleaning removed all of it), so nothing can take its
// place. An identical target has no swapped words and no error.
func (m *match) findSwaps(src, tgt clip.Encoding) ([]int, error) {
	if len(m.source) != len(m.target) {
		return nil, &ChoiceError{Choice: ForceReplace, SourceWords: len(m.source), TargetWords: len(m.target), Word: -1}
	}
	var swapped []int
	for k := range m.source {
		s, t := m.source[k].Tokens, m.target[k].Tokens
		if slices.Equal(tokenIDs(src, s), tokenIDs(tgt, t)) {
			continue
		}
		if len(s) == 0 || len(t) == 0 {
			return nil, &ChoiceError{Choice: ForceReplace, SourceWords: len(m.source), TargetWords: len(m.target), Word: k}
		}
		swapped = append(swapped, k)
	}
	return swapped, nil
}

// contextIDs returns the ids the text encoder sees, unpadded: at most 77,
// ending with EOS.
func contextIDs(e clip.Encoding) []int32 {
	if len(e.IDs) <= n77 {
		return e.IDs
	}
	return append(slices.Clone(e.IDs[:n77-1]), clip.EOS)
}

func tokenIDs(e clip.Encoding, idx []int) []int32 {
	out := make([]int32, len(idx))
	for i, t := range idx {
		out[i] = e.IDs[t]
	}
	return out
}
