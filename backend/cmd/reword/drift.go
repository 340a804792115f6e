package main

import (
	"context"
	"fmt"
	"math"

	"reword/backend/diffusion"
	"reword/shared/clip"
)

// Token groups of a prompt and its swap, compared position by position.
// Prompt-to-Prompt injects the source's attention maps into the edited
// prompt's generation, and the values the maps then weight are the edited
// prompt's states: what it keeps is only as stable as the states of the
// tokens the edit did not touch.
const (
	// groupBefore: the tokens before the swapped word (BOS included). A
	// causal encoder computes them from the same tokens, so they are equal.
	groupBefore = "before"
	// groupSwapped: the swapped word's tokens; an article that changes with
	// the word ("a red" → "an orange") belongs to it, since the span runs
	// from the first to the last token that differs.
	groupSwapped = "swapped"
	// groupAfter: the content tokens after the swapped word.
	groupAfter = "after"
	// groupEnd: EOS and the padding that follows it.
	groupEnd = "EOS+padding"
)

var driftGroups = []string{groupBefore, groupSwapped, groupAfter, groupEnd}

// tokenDrift holds, per group, the cosine similarity of each of its token
// positions between a prompt and its swap.
type tokenDrift map[string][]float64

// swapSpan tokenizes a prompt and its swap and finds the span of positions
// where they differ: [first, last], both −1 for identical prompts. Drift
// compares positions one to one, so the swap must keep the token count.
func swapSpan(tok *clip.Tokenizer, source, target string) (a, b clip.Encoding, first, last int, err error) {
	a, b = tok.Encode(source), tok.Encode(target)
	for _, e := range []clip.Encoding{a, b} {
		if e.Truncated.Dropped > 0 {
			return a, b, 0, 0, fmt.Errorf("%q has %d content tokens; the text encoder reads at most %d", e.Text, len(e.IDs)-2, clip.ContextLength-2)
		}
	}
	if len(a.IDs) != len(b.IDs) {
		return a, b, 0, 0, fmt.Errorf("%q has %d tokens and %q has %d: drift compares the two prompts token by token, so a swap must keep the token count (replace a word by one of as many tokens)",
			source, len(a.IDs), target, len(b.IDs))
	}
	first, last = -1, -1
	for i := range a.IDs {
		if a.IDs[i] != b.IDs[i] {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	return a, b, first, last, nil
}

// groupPositions returns each group's token positions for an encoding of n
// tokens (BOS … EOS) whose swap spans [first, last]; identical prompts
// (first −1) have every position before EOS in groupBefore.
func groupPositions(n, first, last int) map[string][2]int {
	eos := n - 1
	if first < 0 {
		first, last = eos, eos-1
	}
	return map[string][2]int{
		groupBefore:  {0, first},
		groupSwapped: {first, last + 1},
		groupAfter:   {last + 1, eos},
		groupEnd:     {eos, clip.ContextLength},
	}
}

// measureDrift runs the text encoder on each pair and returns each pair's
// per-group cosines. Every pair is checked before the encoder runs.
func measureDrift(ctx context.Context, e *diffusion.Engine, pairs []driftPair) ([]tokenDrift, error) {
	type span struct{ n, first, last int }
	spans := make([]span, len(pairs))
	for i, p := range pairs {
		a, _, first, last, err := swapSpan(e.Tokenizer(), p.source, p.target)
		if err != nil {
			return nil, fmt.Errorf("pair %d (%s): %w", i+1, p.group, err)
		}
		spans[i] = span{len(a.IDs), first, last}
	}
	out := make([]tokenDrift, len(pairs))
	for i, p := range pairs {
		states, hidden, err := e.TextStates(ctx, []string{p.source, p.target})
		if err != nil {
			return nil, fmt.Errorf("pair %d: %q → %q: %w", i+1, p.source, p.target, err)
		}
		d := tokenDrift{}
		for g, r := range groupPositions(spans[i].n, spans[i].first, spans[i].last) {
			for pos := r[0]; pos < r[1]; pos++ {
				at := pos * hidden
				d[g] = append(d[g], cosine(states[0][at:at+hidden], states[1][at:at+hidden]))
			}
		}
		out[i] = d
	}
	return out, nil
}

// cosine similarity in float64; two zero vectors are alike (1), a zero and
// a non-zero one are not (0).
func cosine(a, b []float32) float64 {
	var dot, na, nb float64
	for i := range a {
		x, y := float64(a[i]), float64(b[i])
		dot += x * y
		na += x * x
		nb += y * y
	}
	switch {
	case na == 0 && nb == 0:
		return 1
	case na == 0 || nb == 0:
		return 0
	}
	return dot / math.Sqrt(na*nb)
}
