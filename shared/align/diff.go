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

// Compare aligns target with source as New does.
func Compare(source, target clip.Encoding) Diff {
	m := matchPrompts(source, target)
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

// matchPrompts classifies target: Reweight when its tokens are the
// source's, Replace when it is the source with some words swapped, Refine
// otherwise.
func matchPrompts(src, tgt clip.Encoding) match {
	m := match{source: Words(src), target: Words(tgt)}
	switch {
	case slices.Equal(src.IDs, tgt.IDs):
		m.kind = Reweight
	case m.findSwaps(src, tgt):
		m.kind = Replace
	default:
		m.kind = Refine
		m.aligned = Align(contextIDs(src), contextIDs(tgt))
	}
	return m
}

// findSwaps records the words that tokenize differently, when both prompts
// have the same number of words, and reports whether target is source with
// those words swapped: something differs, and every differing word has
// tokens on both sides.
func (m *match) findSwaps(src, tgt clip.Encoding) bool {
	if len(m.source) != len(m.target) {
		return false
	}
	for k := range m.source {
		s, t := m.source[k].Tokens, m.target[k].Tokens
		if slices.Equal(tokenIDs(src, s), tokenIDs(tgt, t)) {
			continue
		}
		if len(s) == 0 || len(t) == 0 {
			m.swapped = nil
			return false
		}
		m.swapped = append(m.swapped, k)
	}
	return len(m.swapped) > 0
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
