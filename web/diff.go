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
	// Index is the word's place among its prompt's words.
	Index int
	// Counterpart is, for a target word, the index of the source word it
	// stands for (kept or swapped); -1 for an added word (align.Diff).
	Counterpart int
	// FromSource marks a source word the target removed, shown among the
	// target's words where it was (DiffWords).
	FromSource bool
}

// Comparison is a target prompt compared with the source, as Prompt-to-Prompt
// will align them.
type Comparison struct {
	// Kind is how the target will be edited; meaningful only when Empty is
	// false.
	Kind align.Kind
	// Empty is true when the target has no tokens at all.
	Empty bool
	// Choice is the kind the user chose (align.Auto or "" when the prompts
	// decide); Refused is true when the prompts do not allow it and Kind
	// is what auto gives instead.
	Choice  align.Choice
	Refused bool
	// Source and Target are the words of both prompts with their status
	// relative to each other.
	Source, Target []PromptWord
	// Tokens is the number of content tokens in the target; Dropped how
	// many of them are past the context.
	Tokens, Dropped int
	// TailShift is, for a word swap, how many more tokens the target's
	// swapped words have than the source's: the reference replace tail
	// (edit.ReplaceTailReference) maps the tokens after them that far off,
	// so at 0 both tails run the same edit.
	TailShift int
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

// KindName is the comparison's edit kind as the editor shows it: a
// refinement says whether it adds words, removes them, or both (a phrase
// swapped for one of another length). The second value is the text of
// the label, the first its stable name (data-kind).
func (c Comparison) KindName() (name, text string) {
	if c.Empty {
		return "empty", "empty"
	}
	if c.Kind != align.Refine {
		k := KindLabel(c.Kind)
		return k, k
	}
	added := slices.ContainsFunc(c.Target, func(w PromptWord) bool { return w.Status == WordInserted })
	removed := slices.ContainsFunc(c.Source, func(w PromptWord) bool { return w.Status == WordRemoved })
	switch {
	case added && removed:
		return "add-remove", "add & remove"
	case removed:
		return "remove", "remove"
	}
	return "add", "add"
}

// KindTitle explains a kind name in a line.
func KindTitle(name string) string {
	switch name {
	case "swap":
		return "swap: each swapped word takes the place of the source's word; the rest keeps the source's attention"
	case "add":
		return "add: the added words get attention of their own; the rest keeps the source's"
	case "remove":
		return "remove: the removed words' attention is dropped; the rest keeps the source's"
	case "add-remove":
		return "add & remove: the new words get attention of their own, the removed ones' is dropped; the rest keeps the source's"
	case "reweight":
		return "reweight: the same prompt; only the word weights change"
	}
	return "an empty prompt"
}

// DiffWords returns the target's words in order, with the source words it
// removed placed where they stood (FromSource): the edit's diff as the
// editor shows it under the target.
func (c Comparison) DiffWords() []PromptWord {
	var out []PromptWord
	next := 0
	removedUpTo := func(end int) {
		for ; next < end && next < len(c.Source); next++ {
			if w := c.Source[next]; w.Status == WordRemoved {
				w.FromSource = true
				out = append(out, w)
			}
		}
	}
	for k, w := range c.Target {
		if w.Counterpart < 0 {
			// Removed words go before added ones, as a diff reads: up to
			// the next word the target kept.
			bound := len(c.Source)
			for _, later := range c.Target[k+1:] {
				if later.Counterpart >= 0 {
					bound = later.Counterpart
					break
				}
			}
			removedUpTo(bound)
		} else if w.Counterpart >= next {
			removedUpTo(w.Counterpart)
			next = w.Counterpart + 1
		}
		out = append(out, w)
	}
	removedUpTo(len(c.Source))
	return out
}

// MaxContentTokens is how many content tokens a prompt may have before the
// model ignores the rest (CLIP's context minus BOS and EOS).
const MaxContentTokens = clip.ContextLength - 2

// SplitWords returns the words of a prompt with their tokens (the words
// of align.Words), every word marked kept, or cut/ignored when it runs past
// the context.
func SplitWords(enc clip.Encoding) []PromptWord {
	return promptWords(enc, align.Words(enc))
}

func promptWords(enc clip.Encoding, split []align.Word) []PromptWord {
	u16 := utf16Offsets(enc.Text)
	words := make([]PromptWord, len(split))
	for i, sw := range split {
		text := enc.Text[sw.Start:sw.End]
		w := PromptWord{Text: text, Key: wordKey(text), Start: sw.Start, End: sw.End,
			Start16: u16[sw.Start], End16: u16[sw.End], Tokens: sw.Tokens, Status: WordKept,
			Index: i, Counterpart: -1}
		if d := enc.Truncated; d.Dropped > 0 && len(w.Tokens) > 0 {
			switch {
			case w.Tokens[0] >= d.First:
				w.Status = WordIgnored
			case w.Tokens[len(w.Tokens)-1] >= d.First:
				w.Status = WordCut
			}
		}
		words[i] = w
	}
	return words
}

// Compare tokenizes both prompts and marks each word kept, swapped,
// inserted or removed as the edit will treat it: the diff is align's
// (align.Compare), the very match the server builds its attention controls
// from.
func Compare(tok *clip.Tokenizer, source, target string) Comparison {
	return CompareAs(tok, source, target, align.Auto)
}

// CompareAs is Compare for a target whose edit kind the user chose. When the
// prompts do not allow that kind (a replace across different word counts)
// it shows the kind auto would run, with Refused set: the form says why
// next to the kind, and Run is refused until it changes.
func CompareAs(tok *clip.Tokenizer, source, target string, choice align.Choice) Comparison {
	src, tgt := tok.Encode(source), tok.Encode(target)
	d, err := align.CompareAs(src, tgt, choice)
	refused := err != nil
	if refused {
		d = align.Compare(src, tgt)
	}
	c := Comparison{
		Choice:  choice,
		Refused: refused,
		Source:  promptWords(src, d.Source),
		Target:  promptWords(tgt, d.Target),
		Tokens:  len(tgt.IDs) - 2,
		Dropped: tgt.Truncated.Dropped,
		Empty:   len(tgt.IDs) <= 2,
	}
	if c.Empty {
		return c
	}
	c.Kind = d.Kind
	removed, added := WordRemoved, WordInserted
	if d.Kind == align.Replace {
		removed, added = WordSwapped, WordSwapped
	}
	for k, changed := range d.SourceChanged {
		if changed {
			markIfKept(&c.Source[k], removed)
		}
	}
	for k, changed := range d.TargetChanged {
		if changed {
			markIfKept(&c.Target[k], added)
		}
		c.Target[k].Counterpart = d.Counterpart[k]
	}
	if d.Kind == align.Replace {
		c.TailShift = swappedTokens(c.Target) - swappedTokens(c.Source)
	}
	return c
}

// swappedTokens counts the tokens of a prompt's swapped words.
func swappedTokens(words []PromptWord) int {
	n := 0
	for _, w := range words {
		if w.Status == WordSwapped {
			n += len(w.Tokens)
		}
	}
	return n
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

// ChoiceLabel is the text of a kind choice in the edit's kind menu: auto
// says what it resolves to (resolved, a KindName text), the forced kinds
// the names the spec and the CLI use.
func ChoiceLabel(c align.Choice, resolved string) string {
	if c == align.Auto || c == "" {
		return "auto: " + resolved
	}
	return string(c)
}

// ChoiceTitle explains a kind choice in a line.
func ChoiceTitle(c align.Choice) string {
	switch c {
	case align.ForceReplace:
		return "replace: swap the words one for one (needs as many words as the source)"
	case align.ForceRefine:
		return "refine: align the tokens; changed words get attention of their own (what PIE-Bench runs)"
	}
	return "auto: replace when the edit has as many words as the source, refine otherwise"
}
