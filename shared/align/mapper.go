package align

import (
	"fmt"

	"reword/shared/clip"
)

// n77 is the text encoder's sequence length, the side of every mapper.
const n77 = clip.ContextLength

// ReplaceMapper builds the 77×77 replacement matrix M of a word swap
// (docs/algorithm.md, section 4.1), row-major: M[w*77+n] is how much of source token w's
// attention target token n receives. source[k] and target[k] are the token
// indices (BOS = 0) of the k-th swapped word in the two prompts, in prompt
// order, each non-empty and contiguous.
//
// Tokens outside swapped words map one to one in order. A swapped word of
// |S| source tokens and |T| target tokens maps pairwise when |S| = |T|, and
// otherwise gives each target token the sum of the source tokens' attention
// divided by |T|: each source token's attention is spread over the target
// word, so every row of M sums to 1 (or 0 for tokens past the context) and
// attention keeps its total mass. Columns sum to 1 except inside a word of
// uneven token counts (|S|/|T| there) and for target tokens that run past
// the end of the source, which get 0.
//
// The reference writes M[j,j] instead of M[i,j] after the last swapped word,
// which misaligns the rest of the prompt by |T|−|S| tokens; referenceTail
// reproduces that for comparison with published results.
//
// It returns an error if the word lists differ in length or a word's
// indices are empty, not consecutive, out of order or start at BOS.
func ReplaceMapper(source, target [][]int, referenceTail bool) ([]float32, error) {
	if len(source) != len(target) {
		return nil, fmt.Errorf("align: %d swapped words in the source but %d in the target", len(source), len(target))
	}
	for _, side := range []struct {
		name  string
		words [][]int
	}{{"source", source}, {"target", target}} {
		next := 1 // first content token
		for k, w := range side.words {
			if len(w) == 0 {
				return nil, fmt.Errorf("align: swapped word %d of the %s has no tokens", k, side.name)
			}
			for q, t := range w {
				if (q == 0 && t < next) || (q > 0 && t != w[q-1]+1) {
					return nil, fmt.Errorf("align: swapped word %d of the %s has token indices %v: want consecutive indices after the previous word's and after BOS", k, side.name, w)
				}
			}
			next = w[len(w)-1] + 1
		}
	}
	m := make([]float32, n77*n77)
	i, j, k := 0, 0, 0
	for i < n77 && j < n77 {
		switch {
		case k < len(source) && source[k][0] == i:
			s, t := source[k], target[k]
			for q, w := range s {
				if len(s) == len(t) {
					set(m, w, t[q], 1)
					continue
				}
				for _, n := range t {
					set(m, w, n, 1/float32(len(t)))
				}
			}
			i, j, k = i+len(s), j+len(t), k+1
		case k < len(source) || !referenceTail:
			m[i*n77+j] = 1
			i, j = i+1, j+1
		default:
			m[j*n77+j] = 1
			i, j = i+1, j+1
		}
	}
	return m, nil
}

// set writes m[w,n], ignoring tokens past the context.
func set(m []float32, w, n int, v float32) {
	if w < n77 && n < n77 {
		m[w*n77+n] = v
	}
}

// Align is the reference's global alignment of two token sequences
// (Needleman–Wunsch with gap 0, match +1, mismatch −1; docs/algorithm.md,
// section 4.2),
// source x and target y including BOS and EOS. It returns, for each target
// token, the index of the source token it is aligned with, or −1 for a token
// the target added.
//
// Ties prefer, like the reference, a gap in the source (a new target token),
// then a gap in the target (a dropped source token), then a match; since a
// mismatch (−1) never beats two gaps (0), a changed word becomes "drop the
// source token, add the target token".
func Align(x, y []int32) []int {
	const (
		fromLeft = iota + 1 // target token added
		fromUp              // source token dropped
		fromDiag            // tokens aligned
	)
	nx, ny := len(x), len(y)
	score := make([]int, (nx+1)*(ny+1))
	trace := make([]uint8, (nx+1)*(ny+1))
	at := func(i, j int) int { return i*(ny+1) + j }
	for j := 1; j <= ny; j++ {
		trace[at(0, j)] = fromLeft
	}
	for i := 1; i <= nx; i++ {
		trace[at(i, 0)] = fromUp
		for j := 1; j <= ny; j++ {
			left, up := score[at(i, j-1)], score[at(i-1, j)]
			diag := score[at(i-1, j-1)] - 1
			if x[i-1] == y[j-1] {
				diag += 2
			}
			best := max(left, up, diag)
			score[at(i, j)] = best
			switch best {
			case left:
				trace[at(i, j)] = fromLeft
			case up:
				trace[at(i, j)] = fromUp
			default:
				trace[at(i, j)] = fromDiag
			}
		}
	}
	out := make([]int, ny)
	for i, j := nx, ny; i > 0 || j > 0; {
		switch trace[at(i, j)] {
		case fromDiag:
			i, j = i-1, j-1
			out[j] = i
		case fromLeft:
			j--
			out[j] = -1
		default:
			i--
		}
	}
	return out
}

// RefineMapper extends Align to the 77 tokens of the text encoder: gather[n]
// is the source token that target token n copies and keep[n] is 1 when it
// copies one (0 for added tokens). Positions past the target's tokens map to
// themselves with keep 1, as in the reference (padding copies padding).
// x and y are the token ids as the encoder sees them (at most 77, BOS..EOS,
// unpadded).
func RefineMapper(x, y []int32) (gather []int, keep []float32) {
	return refineMapper(Align(x, y))
}

// refineMapper is RefineMapper of an alignment Align computed.
func refineMapper(aligned []int) (gather []int, keep []float32) {
	gather, keep = make([]int, n77), make([]float32, n77)
	for n := range n77 {
		switch {
		case n < len(aligned) && aligned[n] >= 0:
			gather[n], keep[n] = aligned[n], 1
		case n < len(aligned):
			gather[n], keep[n] = -1, 0
		default:
			gather[n], keep[n] = n, 1
		}
	}
	return gather, keep
}
