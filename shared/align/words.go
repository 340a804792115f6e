package align

import (
	"strings"

	"reword/shared/clip"
)

// WordTokens returns the indices into prompt.IDs (BOS is index 0) of every
// occurrence of word in the prompt, in order.
//
// The reference (p2p-spec.md §5) splits the prompt on single spaces and
// compares whole strings, then walks decoded token lengths; it misses "cat" in
// "a cat, sitting" and breaks on non-ASCII text. Here the word is tokenized on
// its own and its token sequence is searched in the prompt's tokens, starting
// at a word-piece boundary. Tokenization already lowercases and splits off
// punctuation, so "Cat" finds "cat," and "red car" finds both tokens of the
// phrase, while "realistic" does not match inside "photorealistic" and "cat"
// does not match "cats". A word that tokenizes to nothing matches nothing.
func WordTokens(tok *clip.Tokenizer, prompt clip.Encoding, word string) []int {
	w := tok.Encode(word).IDs
	w = w[1 : len(w)-1]
	if len(w) == 0 {
		return nil
	}
	var out []int
	ids := prompt.IDs
	for i := 1; i+len(w) <= len(ids)-1; i++ {
		if !pieceStart(prompt, i) || !equalIDs(ids[i:i+len(w)], w) {
			continue
		}
		for k := range w {
			out = append(out, i+k)
		}
		i += len(w) - 1
	}
	return out
}

// pieceStart reports whether token i starts a word piece: the token before it
// is BOS, a special token or the end of a piece ("…</w>").
func pieceStart(prompt clip.Encoding, i int) bool {
	prev := prompt.IDs[i-1]
	return prev == clip.BOS || prev == clip.EOS || strings.HasSuffix(prompt.Tokens[i-1], "</w>")
}

func equalIDs(a, b []int32) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
