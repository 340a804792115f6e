package align

import (
	"fmt"
	"math"
	"slices"

	"reword/shared/clip"
)

// Window is a part of the diffusion run as fractions of the steps, [Start, End).
type Window struct {
	Start, End float64
}

// Kind is how a target prompt relates to the source.
type Kind int

const (
	// Reweight: the target is the source prompt (same tokens); only
	// reweights change the attention.
	Reweight Kind = iota
	// Replace: same number of words, some swapped (AttentionReplace).
	Replace
	// Refine: words added or removed (AttentionRefine).
	Refine
)

func (k Kind) String() string {
	switch k {
	case Reweight:
		return "reweight"
	case Replace:
		return "replace"
	case Refine:
		return "refine"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Config is what the alignment needs from an edit.
type Config struct {
	Source  string
	Targets []string
	// Steps is the number of diffusion steps T of the run.
	Steps int
	// Cross is the cross-replace window of every token; CrossChanged
	// overrides it for the words a word swap changes, and CrossWords,
	// over both, for the tokens of single words of the targets.
	Cross Window
	// CrossChanged, when not nil, is the window of the swapped words of
	// each Replace target (the published examples' {"default_": 1.0,
	// "lion": 0.4}, without naming the word): the other tokens keep the
	// source's maps over Cross while the words that changed draw their
	// own after CrossChanged. Targets of other kinds have no swapped words.
	CrossChanged *Window
	CrossWords   map[string]Window
	// Self is the self-attention replacement window.
	Self Window
	// Norm is the window in which the targets' GroupNorms take the
	// source's means (empty: never).
	Norm Window
	// Reweights scales the attention of words of the targets.
	Reweights map[string]float64
	// Blend is each target's local blend, in target order (shorter than
	// Targets, or an entry without words: that target is not blended,
	// unless BlendChanged).
	Blend []Blend
	// BlendChanged blends every target that changes words and has no
	// blend words of its own on the words it changes (Diff.ChangedWords),
	// keeping its entry's excluded words.
	BlendChanged bool
	// BlendReweighted blends every pure reweight target that has no
	// blend words of its own on the words it reweights (Reweights with a
	// factor other than 1), keeping its excluded words.
	BlendReweighted bool
	// Kinds is the edit kind chosen for each target, in target order
	// (shorter than Targets, or an empty entry: Auto).
	Kinds []Choice
	// ReferenceReplaceTail reproduces the reference's misalignment after the
	// last swapped word of different token counts (see ReplaceMapper).
	ReferenceReplaceTail bool
}

// Blend is one target's local blend: the words whose region the target
// may change (looked up in the source and in the target) and the words
// whose region it never changes (the reference's substruct_words).
type Blend struct {
	Words, Exclude []string
}

// BlendMask is one target's local blend as token masks: 77-vectors with 1
// at the tokens of its blend words (Source, Target) and of its excluded
// words (ExcludeSource, ExcludeTarget, nil when it excludes none), in the
// source prompt and in the target.
type BlendMask struct {
	Source, Target               []float32
	ExcludeSource, ExcludeTarget []float32
}

// Controller holds the per-edit alignment and produces the per-step control
// tensors. It is immutable after New and safe for concurrent use.
type Controller struct {
	steps int
	kinds []Kind
	// Per target: mapper G (77×77, row = source token), keep a[n] and
	// equalizer E[n].
	mapper, keep, equalizer [][]float32
	// Per target and token: the cross window in steps [crossFrom, crossTo).
	crossFrom, crossTo [][n77]int
	// textSource is, per target, TextSource.
	textSource       [][]int
	selfFrom, selfTo int
	normFrom, normTo int
	blend            []*BlendMask
}

// New aligns the prompts of cfg. It returns an error for an invalid
// configuration: no or too many targets, steps < 1, windows outside [0, 1],
// non-finite reweights, more kinds than targets, or a kind the prompts do
// not allow (a *ChoiceError).
func New(tok *clip.Tokenizer, cfg Config) (*Controller, error) {
	if len(cfg.Targets) == 0 {
		return nil, fmt.Errorf("align: no target prompts")
	}
	if cfg.Steps < 1 {
		return nil, fmt.Errorf("align: %d steps; want at least 1", cfg.Steps)
	}
	windows := map[string]Window{"cross": cfg.Cross, "self": cfg.Self, "norm": cfg.Norm}
	if cfg.CrossChanged != nil {
		windows["cross window of the changed words"] = *cfg.CrossChanged
	}
	for w, win := range cfg.CrossWords {
		windows[fmt.Sprintf("cross window of %q", w)] = win
	}
	for _, name := range sortedKeys(windows) {
		if w := windows[name]; !(w.Start >= 0 && w.Start <= w.End && w.End <= 1) {
			return nil, fmt.Errorf("align: %s [%v, %v] is not inside [0, 1] with start ≤ end", name, w.Start, w.End)
		}
	}
	for _, w := range sortedKeys(cfg.Reweights) {
		if f := cfg.Reweights[w]; math.IsNaN(f) || math.IsInf(f, 0) {
			return nil, fmt.Errorf("align: reweight of %q is %v; want a finite factor", w, f)
		}
	}

	if len(cfg.Kinds) > len(cfg.Targets) {
		return nil, fmt.Errorf("align: %d edit kinds for %d targets", len(cfg.Kinds), len(cfg.Targets))
	}
	if len(cfg.Blend) > len(cfg.Targets) {
		return nil, fmt.Errorf("align: %d local blends for %d targets", len(cfg.Blend), len(cfg.Targets))
	}

	src := tok.Encode(cfg.Source)
	c := &Controller{steps: cfg.Steps}
	c.selfFrom, c.selfTo = int(cfg.Self.Start*float64(cfg.Steps)), int(cfg.Self.End*float64(cfg.Steps))
	c.normFrom, c.normTo = int(cfg.Norm.Start*float64(cfg.Steps)), int(cfg.Norm.End*float64(cfg.Steps))
	crossFrom, crossTo := crossSteps(cfg.Cross, cfg.Steps)
	for e, target := range cfg.Targets {
		tgt := tok.Encode(target)
		choice := Auto
		if e < len(cfg.Kinds) && cfg.Kinds[e] != "" {
			choice = cfg.Kinds[e]
		}
		m, err := matchPrompts(src, tgt, choice)
		if err != nil {
			return nil, fmt.Errorf("target %d: %w", e+1, err)
		}
		kind, mapper, keep, err := mapTarget(m, cfg.ReferenceReplaceTail)
		if err != nil {
			return nil, fmt.Errorf("target %d: %w", e+1, err)
		}
		eq := ones(n77)
		for _, w := range sortedKeys(cfg.Reweights) {
			for _, n := range WordTokens(tok, tgt, w) {
				if n < n77 {
					eq[n] = float32(cfg.Reweights[w])
				}
			}
		}
		var from, to [n77]int
		for n := range n77 {
			from[n], to[n] = crossFrom, crossTo
		}
		if cfg.CrossChanged != nil && m.kind == Replace {
			f, t := crossSteps(*cfg.CrossChanged, cfg.Steps)
			for _, k := range m.swapped {
				for _, n := range m.target[k].Tokens {
					if n < n77 {
						from[n], to[n] = f, t
					}
				}
			}
		}
		for _, w := range sortedKeys(cfg.CrossWords) {
			f, t := crossSteps(cfg.CrossWords[w], cfg.Steps)
			for _, n := range WordTokens(tok, tgt, w) {
				if n < n77 {
					from[n], to[n] = f, t
				}
			}
		}
		c.kinds = append(c.kinds, kind)
		c.mapper = append(c.mapper, mapper)
		c.keep = append(c.keep, keep)
		c.equalizer = append(c.equalizer, eq)
		c.crossFrom = append(c.crossFrom, from)
		c.crossTo = append(c.crossTo, to)
		c.textSource = append(c.textSource, textSource(src, tgt, m, mapper))
		var b Blend
		if e < len(cfg.Blend) {
			b = cfg.Blend[e]
		}
		switch {
		case len(b.Words) > 0:
		case kind == Reweight && cfg.BlendReweighted:
			b.Words = reweightedWords(cfg.Reweights)
		case cfg.BlendChanged:
			b.Words = m.diff(src).ChangedWords(src.Text, tgt.Text)
		}
		if len(b.Words) == 0 {
			continue // excluded words alone blend nothing
		}
		if c.blend == nil {
			c.blend = make([]*BlendMask, len(cfg.Targets))
		}
		bm := &BlendMask{Source: tokenMask(tok, src, b.Words), Target: tokenMask(tok, tgt, b.Words)}
		if len(b.Exclude) > 0 {
			bm.ExcludeSource, bm.ExcludeTarget = tokenMask(tok, src, b.Exclude), tokenMask(tok, tgt, b.Exclude)
		}
		c.blend[e] = bm
	}
	return c, nil
}

// reweightedWords returns the words reweights scales by a factor other
// than 1, sorted: what a pure reweight blends on with
// Config.BlendReweighted (a word the target lacks blends nothing, as any
// blend word).
func reweightedWords(reweights map[string]float64) []string {
	var words []string
	for _, w := range sortedKeys(reweights) {
		if reweights[w] != 1 {
			words = append(words, w)
		}
	}
	return words
}

// crossSteps converts a cross window to steps with the reference's T+1 rows.
func crossSteps(w Window, steps int) (from, to int) {
	rows := float64(steps + 1)
	return int(w.Start * rows), int(w.End * rows)
}

// mapTarget builds a target's mapper G and keep vector a from its match
// with the source, the one the editor's diff shows (CompareAs).
func mapTarget(m match, referenceTail bool) (Kind, []float32, []float32, error) {
	switch m.kind {
	case Reweight:
		g := make([]float32, n77*n77)
		for n := range n77 {
			g[n*n77+n] = 1
		}
		return Reweight, g, ones(n77), nil
	case Replace:
		var s, t [][]int
		for _, k := range m.swapped {
			s, t = append(s, m.source[k].Tokens), append(t, m.target[k].Tokens)
		}
		g, err := ReplaceMapper(s, t, referenceTail)
		if err != nil {
			return 0, nil, nil, err
		}
		return Replace, g, ones(n77), nil
	}
	gather, keep := refineMapper(m.aligned)
	g := make([]float32, n77*n77)
	for n, w := range gather {
		if keep[n] == 1 {
			g[w*n77+n] = 1
		}
	}
	return Refine, g, keep, nil
}

// tokenMask is a 77-vector with 1 at the tokens of words in the prompt.
func tokenMask(tok *clip.Tokenizer, enc clip.Encoding, words []string) []float32 {
	mask := make([]float32, n77)
	for _, w := range words {
		for _, n := range WordTokens(tok, enc, w) {
			if n < n77 {
				mask[n] = 1
			}
		}
	}
	return mask
}

func ones(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = 1
	}
	return v
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
