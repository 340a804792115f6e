package clip

import (
	"regexp"
	"unicode/utf16"
	"unicode/utf8"
)

// Span is a half-open range [Start, End) of offsets into a text: bytes of the
// UTF-8 text, or UTF-16 code units of the same text as a JavaScript string.
type Span struct {
	Start, End int
}

// Truncation says which content tokens do not fit in ContextLength (BOS, 75
// content tokens, EOS), so that the UI can mark the words the model ignores.
type Truncation struct {
	// Dropped is the number of content tokens past the limit; 0 when the
	// prompt fits.
	Dropped int
	// First is the index in Encoding.IDs of the first dropped token (valid
	// when Dropped > 0).
	First int
	// Start and StartUTF16 are where the first dropped token's text begins;
	// everything from there on is ignored by the model. A word whose first
	// tokens fit and whose last ones do not is cut inside the word.
	Start, StartUTF16 int
}

// Encoding is the tokenization of one text.
type Encoding struct {
	// Text is the text that was encoded; Spans index it.
	Text string
	// IDs are the token ids, unpadded: BOS, every content token, EOS.
	IDs []int32
	// Tokens are the vocabulary strings of IDs, e.g. "cat</w>".
	Tokens []string
	// Spans are the byte spans of IDs in the original text; BOS gets [0,0)
	// and EOS [len(text), len(text)).
	Spans []Span
	// UTF16 are the same spans in UTF-16 code units.
	UTF16 []Span
	// Truncated describes the content tokens past ContextLength.
	Truncated Truncation
}

// Padded returns the ids as the SD 1.x text encoder takes them: exactly n ids,
// cut so that the last kept id is EOS and padded with EOS. Its length is
// max(n, 0); for n == 1 it is just [EOS]. It is PaddedWith(n, EOS).
func (e Encoding) Padded(n int) []int32 { return e.PaddedWith(n, EOS) }

// PaddedWith returns exactly n ids, cut so that the last kept id is EOS,
// with pad after it: Hugging Face's CLIPTokenizer with padding="max_length"
// and truncation, for a tokenizer whose pad token is pad. SD 1.x's tokenizer
// pads with EOS; SD 2.x's and SDXL's second one with "!" (id 0,
// Tokenizer.PadID). The ids up to EOS are the same whatever pad is, so the
// padding never changes which token sits where (shared/align aligns the
// unpadded ids). For n == 1 it is just [EOS].
func (e Encoding) PaddedWith(n int, pad int32) []int32 {
	if n <= 0 {
		return []int32{}
	}
	out := make([]int32, n)
	kept := copy(out[:n-1], e.IDs[:max(len(e.IDs)-1, 0)])
	out[kept] = EOS
	for i := kept + 1; i < n; i++ {
		out[i] = pad
	}
	return out
}

// pretokenizer splits cleaned text into the pieces BPE runs on, as CLIP's
// regular expression does. Go's alternation is leftmost-first like Python's;
// after cleaning, the only white space left is ' ', so RE2's ASCII \s is
// enough.
var pretokenizer = regexp.MustCompile(`(?i)<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+`)

// Encode tokenizes text. It never fails: any string, including invalid UTF-8,
// has an encoding (see the package doc for how text is cleaned).
func (t *Tokenizer) Encode(text string) Encoding {
	c := clean(text)
	enc := Encoding{
		Text:   text,
		IDs:    []int32{BOS},
		Tokens: []string{t.vocab[BOS]},
		Spans:  []Span{{0, 0}},
	}
	var word []int32
	var scratch bpeScratch
	for _, m := range pretokenizer.FindAllStringIndex(c.text, -1) {
		piece := c.text[m[0]:m[1]]
		switch piece {
		case "<|startoftext|>", "<|endoftext|>":
			id := BOS
			if piece == "<|endoftext|>" {
				id = EOS
			}
			enc.add(id, t.vocab[id], Span{int(c.start[m[0]]), int(c.end[m[1]-1])})
			continue
		}
		word = word[:0]
		for i := 0; i < len(piece); i++ {
			word = append(word, t.byteSymbol[piece[i]])
		}
		word[len(word)-1] += 256 // the end-of-word variant of the last byte
		pos := m[0]
		for _, id := range t.bpe(word, &scratch) {
			n := int(t.byteLen[id])
			enc.add(id, t.vocab[id], Span{int(c.start[pos]), int(c.end[pos+n-1])})
			pos += n
		}
	}
	enc.add(EOS, t.vocab[EOS], Span{len(text), len(text)})
	enc.UTF16 = utf16Spans(text, enc.Spans)
	if content := len(enc.IDs) - 2; content > ContextLength-2 {
		first := ContextLength - 1
		enc.Truncated = Truncation{
			Dropped:    content - (ContextLength - 2),
			First:      first,
			Start:      enc.Spans[first].Start,
			StartUTF16: enc.UTF16[first].Start,
		}
	}
	return enc
}

func (e *Encoding) add(id int32, tok string, span Span) {
	e.IDs = append(e.IDs, id)
	e.Tokens = append(e.Tokens, tok)
	e.Spans = append(e.Spans, span)
}

// utf16Spans converts byte spans of text into UTF-16 code-unit spans. Span
// ends always fall on character boundaries of text (an invalid byte counts as
// one U+FFFD character, as in a JavaScript string decoded from it).
func utf16Spans(text string, spans []Span) []Span {
	// units[i] is the UTF-16 offset of byte offset i (at character starts).
	units := make([]int32, len(text)+1)
	u := int32(0)
	for i := 0; i < len(text); {
		r, w := utf8.DecodeRuneInString(text[i:])
		units[i] = u
		for k := 1; k < w; k++ {
			units[i+k] = u // inside a character: not a span end, but defined
		}
		u += int32(utf16.RuneLen(r))
		i += w
	}
	units[len(text)] = u
	out := make([]Span, len(spans))
	for i, s := range spans {
		out[i] = Span{int(units[s.Start]), int(units[s.End])}
	}
	return out
}
