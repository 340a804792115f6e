package edit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
)

// Blend is the local blend of one target (Prompt-to-Prompt's LocalBlend):
// the target changes only where its blend words are, and keeps the
// source's latents elsewhere. A word counts where it occurs: in the source
// prompt (the region of the thing being replaced) and in the target (the
// region of its replacement), so {"words": ["cat", "tiger"]} lets the
// target repaint the cat as a tiger and nothing else.
//
// Exclude names words whose region is never edited, even inside the blend
// words' region (the reference's substruct_words); it needs Words.
type Blend struct {
	Words   []string `json:"words,omitempty"`
	Exclude []string `json:"exclude,omitempty"`
}

// IsZero reports whether the entry blends nothing.
func (b Blend) IsZero() bool { return len(b.Words) == 0 && len(b.Exclude) == 0 }

// Clone returns a copy that shares nothing with b.
func (b Blend) Clone() Blend {
	return Blend{Words: slices.Clone(b.Words), Exclude: slices.Clone(b.Exclude)}
}

// UnmarshalJSON decodes one entry strictly, and explains the form links
// of version 1 used (one flat list of words for every target), which
// would otherwise fail with a type error about Go structs.
func (b *Blend) UnmarshalJSON(data []byte) error {
	data = bytes.TrimSpace(data)
	if len(data) > 0 && data[0] == '"' {
		var word string
		json.Unmarshal(data, &word)
		word = abbreviate(word)
		return fmt.Errorf("blend entry %q: blend words belong to each target; write one entry per target, e.g. [{\"words\": [%q]}]", word, word)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	type plain Blend // no methods: avoids recursion
	var p plain
	if err := dec.Decode(&p); err != nil {
		return fmt.Errorf("blend entry: %w", err)
	}
	*b = Blend(p)
	b.normalize()
	return nil
}

func (b *Blend) normalize() {
	if len(b.Words) == 0 {
		b.Words = nil
	}
	if len(b.Exclude) == 0 {
		b.Exclude = nil
	}
}

// BlendsChangedWords reports whether the targets of s that name no blend
// words of their own blend on the words they change: the spec's
// blend_changed, else the model's default (d; nil while it is not known,
// which counts as off).
func (s Spec) BlendsChangedWords(d *Defaults) bool {
	return stateOr(s.BlendChanged, d, func(d *Defaults) bool { return d.BlendChanged })
}

// BlendsReweightedWords reports whether the pure reweights of s that name
// no blend words of their own blend on the words they reweight: the spec's
// blend_reweighted, else the model's default (d; nil while it is not
// known, which counts as off).
func (s Spec) BlendsReweightedWords(d *Defaults) bool {
	return stateOr(s.BlendReweighted, d, func(d *Defaults) bool { return d.BlendReweighted })
}

// stateOr is an on/off setting of a spec (stated: nil when left out), else
// the model's default for it (of d; off while d is not known).
func stateOr(stated *bool, d *Defaults, def func(*Defaults) bool) bool {
	switch {
	case stated != nil:
		return *stated
	case d != nil:
		return def(d)
	}
	return false
}

// BlendOf returns target i's blend entry (zero when it has none).
func (s Spec) BlendOf(i int) Blend {
	if i < 0 || i >= len(s.Blend) {
		return Blend{}
	}
	return s.Blend[i]
}

// SetBlend sets target i's blend entry, growing or trimming s.Blend so
// that it stays canonical. It copies the entries first: other copies of
// the spec may share them.
func (s *Spec) SetBlend(i int, b Blend) {
	if i < 0 {
		return
	}
	b = b.Clone()
	b.normalize()
	s.Blend = cloneBlends(s.Blend)
	for len(s.Blend) <= i {
		s.Blend = append(s.Blend, Blend{})
	}
	s.Blend[i] = b
	s.normalizeBlend()
}

// DropTarget removes target i with its blend entry and its kind, so that
// the other targets keep theirs.
func (s *Spec) DropTarget(i int) {
	if i < 0 || i >= len(s.Targets) {
		return
	}
	s.Targets = slices.Delete(slices.Clone(s.Targets), i, i+1)
	if i < len(s.Blend) {
		s.Blend = slices.Delete(cloneBlends(s.Blend), i, i+1)
	}
	if i < len(s.Kinds) {
		s.Kinds = slices.Delete(slices.Clone(s.Kinds), i, i+1)
	}
	s.normalizeBlend()
	s.normalizeKinds()
}

// normalizeBlend drops trailing entries that blend nothing (a missing
// entry means the same) and makes empty word lists nil, so that equal
// edits have one JSON form. It never writes into the slice it was given,
// which other copies of the spec may share.
func (s *Spec) normalizeBlend() {
	n := len(s.Blend)
	for n > 0 && s.Blend[n-1].IsZero() {
		n--
	}
	if n == 0 {
		s.Blend = nil
		return
	}
	s.Blend = s.Blend[:n]
	if !slices.ContainsFunc(s.Blend, func(b Blend) bool {
		return (b.Words != nil && len(b.Words) == 0) || (b.Exclude != nil && len(b.Exclude) == 0)
	}) {
		return
	}
	out := make([]Blend, n)
	for i, b := range s.Blend {
		b.normalize()
		out[i] = b
	}
	s.Blend = out
}

func cloneBlends(bs []Blend) []Blend {
	if bs == nil {
		return nil
	}
	out := make([]Blend, len(bs))
	for i, b := range bs {
		out[i] = b.Clone()
	}
	return out
}
