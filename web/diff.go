package web

import (
	"slices"
	"strings"
	"unicode"

	"reword/shared/align"
	"reword/shared/clip"
)

// WordStatus is how one word of a prompt takes part in an edit.
type WordStatus string

// Word statuses, shown as colours on the word chips.
const (
	// WordKept: the word is in both prompts; its attention is copied.
	WordKept WordStatus = "kept"
	// WordSwapped: the word replaces the source word at the same position
	// (a word swap), or, on the source, is replaced.
	WordSwapped WordStatus = "swapped"
	// WordInserted: the target added the word; it gets its own attention.
	WordInserted WordStatus = "inserted"
	// WordRemoved: a source word the target dropped.
	WordRemoved WordStatus = "removed"
	// WordCut: the word starts inside CLIP's 77-token context but ends past
	// it; the model sees only its first tokens.
	WordCut WordStatus = "cut"
	// WordIgnored: the word lies past the 77-token context; the model never
	// sees it.
	WordIgnored WordStatus = "ignored"
)

// PromptWord is one white-space separated word of a prompt, as the editor
// shows it.
type PromptWord struct {
	// Text is the word as typed, punctuation included.
	Text string
	// Key is the word as the spec names it in reweights, cross_words and
	// blend: lowercased, without surrounding punctuation ("Cat," → "cat").
	Key string
	// Start and End are the word's byte offsets in the prompt; Start16 and
	// End16 the same in UTF-16 code units, for the browser's text selection.
	Start, End     int
	Start16, End16 int
	// Tokens are the word's indices into the prompt's CLIP tokens (BOS = 0),
	// the indices the server's heat maps use.
	Tokens []int
	Status WordStatus
}

// Comparison is a target prompt compared with the source, as Prompt-to-Prompt
// will align them.
type Comparison struct {
	// Kind is how the target will be edited; meaningful only when Empty is
	// false.
	Kind align.Kind
	// Empty is true when the target has no tokens at all.
	Empty bool
	// Source and Target are the words of both prompts with their status
	// relative to each other.
	Source, Target []PromptWord
	// Tokens is the number of content tokens in the target; Dropped how
	// many of them are past the context.
	Tokens, Dropped int
}

// KindLabel names an edit kind the way the editor shows it.
func KindLabel(k align.Kind) string {
	switch k {
	case align.Replace:
		return "swap"
	case align.Refine:
		return "add"
	case align.Reweight:
		return "reweight"
	}
	return k.String()
}

// MaxContentTokens is how many content tokens a prompt may have before the
// model ignores the rest (CLIP's context minus BOS and EOS).
const MaxContentTokens = clip.ContextLength - 2

// SplitWords returns the words of a prompt with their tokens, every word
// marked kept, or cut/ignored when it runs past the context.
func SplitWords(enc clip.Encoding) []PromptWord {
	var words []PromptWord
	start := -1
	add := func(from, to int) {
		words = append(words, PromptWord{Text: enc.Text[from:to], Key: wordKey(enc.Text[from:to]), Start: from, End: to, Status: WordKept})
	}
	for i, r := range enc.Text {
		if unicode.IsSpace(r) {
			if start >= 0 {
				add(start, i)
				start = -1
			}
		} else if start < 0 {
			start = i
		}
	}
	if start >= 0 {
		add(start, len(enc.Text))
	}
	// Assign each content token to the word its span starts in, and find the
	// words' UTF-16 offsets from their tokens (a word always has tokens
	// unless cleaning removed all of it, e.g. a lone control character).
	k := 0
	for t := 1; t < len(enc.IDs)-1; t++ {
		at := enc.Spans[t].Start
		for k < len(words) && words[k].End <= at {
			k++
		}
		if k == len(words) {
			break
		}
		if words[k].Start <= at {
			words[k].Tokens = append(words[k].Tokens, t)
		}
	}
	u16 := utf16Offsets(enc.Text)
	for i := range words {
		w := &words[i]
		w.Start16, w.End16 = u16[w.Start], u16[w.End]
		if d := enc.Truncated; d.Dropped > 0 && len(w.Tokens) > 0 {
			switch {
			case w.Tokens[0] >= d.First:
				w.Status = WordIgnored
			case w.Tokens[len(w.Tokens)-1] >= d.First:
				w.Status = WordCut
			}
		}
	}
	return words
}

// Compare tokenizes both prompts and marks each word kept, swapped, inserted
// or removed the way align classifies the edit: a word swap when both have
// the same number of words, else a global token alignment.
func Compare(tok *clip.Tokenizer, source, target string) Comparison {
	src, tgt := tok.Encode(source), tok.Encode(target)
	c := Comparison{
		Source:  SplitWords(src),
		Target:  SplitWords(tgt),
		Tokens:  len(tgt.IDs) - 2,
		Dropped: tgt.Truncated.Dropped,
		Empty:   len(tgt.IDs) <= 2,
	}
	if c.Empty {
		return c
	}
	ctl, err := align.New(tok, align.Config{Source: source, Targets: []string{target}, Steps: 1, Cross: align.Window{End: 1}})
	if err != nil {
		// Unreachable with one target, one step and valid windows; show the
		// words unmarked rather than guess.
		return c
	}
	c.Kind = ctl.Kind(0)
	switch c.Kind {
	case align.Replace:
		for k := range c.Target {
			if k < len(c.Source) && !slices.Equal(tokenIDs(src, c.Source[k].Tokens), tokenIDs(tgt, c.Target[k].Tokens)) {
				markIfKept(&c.Source[k], WordSwapped)
				markIfKept(&c.Target[k], WordSwapped)
			}
		}
	case align.Refine:
		mapping := align.Align(contextIDs(src), contextIDs(tgt))
		used := make([]bool, len(src.IDs))
		for _, w := range mapping {
			if w >= 0 {
				used[w] = true
			}
		}
		for i := range c.Target {
			for _, n := range c.Target[i].Tokens {
				if n < len(mapping) && mapping[n] < 0 {
					markIfKept(&c.Target[i], WordInserted)
					break
				}
			}
		}
		for i := range c.Source {
			for _, n := range c.Source[i].Tokens {
				if n < clip.ContextLength-1 && !used[n] {
					markIfKept(&c.Source[i], WordRemoved)
					break
				}
			}
		}
	}
	return c
}

// markIfKept sets the status of a word the context limit did not already
// mark: a word the model ignores is shown as ignored whatever the edit does.
func markIfKept(w *PromptWord, s WordStatus) {
	if w.Status == WordKept {
		w.Status = s
	}
}

// wordKey is the name a word goes by in the spec: lowercased and stripped of
// surrounding punctuation, or the word itself if it is all punctuation.
func wordKey(text string) string {
	k := strings.TrimFunc(text, func(r rune) bool { return unicode.IsPunct(r) || unicode.IsSymbol(r) })
	if k == "" {
		k = text
	}
	return strings.ToLower(k)
}

// contextIDs is the part of an encoding the text encoder sees: at most 77
// ids, ending with EOS.
func contextIDs(e clip.Encoding) []int32 {
	if len(e.IDs) <= clip.ContextLength {
		return e.IDs
	}
	return append(slices.Clone(e.IDs[:clip.ContextLength-1]), clip.EOS)
}

func tokenIDs(e clip.Encoding, idx []int) []int32 {
	out := make([]int32, len(idx))
	for i, t := range idx {
		out[i] = e.IDs[t]
	}
	return out
}

// utf16Offsets maps every byte offset of s (0..len(s)) that starts a rune,
// and len(s), to its offset in UTF-16 code units.
func utf16Offsets(s string) []int {
	out := make([]int, len(s)+1)
	n := 0
	for i, r := range s {
		out[i] = n
		if r >= 0x10000 {
			n += 2
		} else {
			n++
		}
	}
	out[len(s)] = n
	return out
}
