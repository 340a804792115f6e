package align

import "reword/shared/clip"

// TextSource returns, for each of the 77 text positions of target e, the
// source position whose text state the target takes when an edit keeps
// the source's text states for the words it did not change
// (edit.Spec.KeepSourceText), or −1 where the target keeps its own. The
// slice is shared: do not modify it.
//
// A position takes the source's state when the mapper sends exactly one
// source position to it, whole, and both hold the same token: the words
// the edit kept, BOS, EOS and the padding. The tokens of a swapped word,
// of an added word, and of a word whose token count changed keep the
// target's own states, and so do every position the reference tail
// misaligns and the last padding positions of a target shorter than its
// source, which the shifted tail leaves without a counterpart. An encoder
// that lets every token see the swapped word (a causal one: CLIP's EOS
// and padding states sum up the whole prompt) then carries the swap into
// the swapped word's tokens alone.
func (c *Controller) TextSource(e int) []int { return c.textSource[e] }

// textSource is TextSource of one target from its alignment.
func textSource(src, tgt clip.Encoding, m match, mapper []float32) []int {
	srcIDs, tgtIDs := paddedIDs(src), paddedIDs(tgt)
	own := make([]bool, n77)
	for _, k := range m.swapped {
		for _, n := range m.target[k].Tokens {
			if n < n77 {
				own[n] = true
			}
		}
	}
	from := make([]int, n77)
	for n := range from {
		from[n] = -1
		if own[n] {
			continue
		}
		w, ok := soleSource(mapper, n)
		if ok && srcIDs[w] == tgtIDs[n] {
			from[n] = w
		}
	}
	return from
}

// soleSource returns the one source position that gives target position n
// all of its attention in mapper, if there is exactly one.
func soleSource(mapper []float32, n int) (int, bool) {
	w := -1
	for row := range n77 {
		switch v := mapper[row*n77+n]; {
		case v == 0:
		case v == 1 && w < 0:
			w = row
		default:
			return -1, false
		}
	}
	return w, w >= 0
}

// paddedIDs returns the 77 ids the text encoder sees, with −1 for the
// padding: a model pads with EOS or with id 0 (clip.Encoding.PaddedWith),
// and either way both prompts hold the same id there.
func paddedIDs(e clip.Encoding) []int32 {
	ids := make([]int32, n77)
	n := copy(ids, contextIDs(e))
	for i := n; i < n77; i++ {
		ids[i] = -1
	}
	return ids
}
