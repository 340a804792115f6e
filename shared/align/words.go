package align

import (
	"sort"
	"strings"
	"unicode"

	"reword/shared/clip"
)

// WordTokens returns the indices into prompt.IDs (BOS is index 0) of every
// occurrence of word in the prompt, in order.
//
// The published code splits the prompt on single spaces and
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

// Word is one white-space separated word of a prompt: its byte range in
// the prompt's text and the indices of its content tokens (BOS is 0).
type Word struct {
	Start, End int
	Tokens     []int
}

// Words splits the prompt's text into white-space separated words (as the
// reference splits on spaces, but any run of white space is one separator)
// and gives each word the content tokens whose span starts inside it. A
// word has no tokens when cleaning removed all of it (a lone control
// character, for example).
func Words(e clip.Encoding) []Word {
	var words []Word
	start := -1
	for i, r := range e.Text {
		if unicode.IsSpace(r) {
			if start >= 0 {
				words = append(words, Word{Start: start, End: i})
				start = -1
			}
		} else if start < 0 {
			start = i
		}
	}
	if start >= 0 {
		words = append(words, Word{Start: start, End: len(e.Text)})
	}
	for t := 1; t < len(e.IDs)-1; t++ {
		at := e.Spans[t].Start
		k := sort.Search(len(words), func(k int) bool { return words[k].End > at })
		if k < len(words) && words[k].Start <= at {
			words[k].Tokens = append(words[k].Tokens, t)
		}
	}
	return words
}
