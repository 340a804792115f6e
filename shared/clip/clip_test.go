package clip

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

// vectorFile is testdata/vectors.json: published SD 1.x CLIP token ids,
// collected from the test files of other CLIP tokenizer implementations.
type vectorFile struct {
	Vectors []struct {
		Src     string  `json:"src"`
		Text    string  `json:"text"`
		IDs     []int32 `json:"ids"`
		Variant string  `json:"variant"`
	} `json:"vectors"`
	Padded []struct {
		Src    string  `json:"src"`
		Repeat [3]any  `json:"repeat"`
		Head   []int32 `json:"head"`
		Tail   []int32 `json:"tail"`
	} `json:"padded"`
}

func loadVectors(t *testing.T) vectorFile {
	t.Helper()
	data, err := os.ReadFile("testdata/vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var f vectorFile
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	return f
}

func tokenizer(t testing.TB) *Tokenizer {
	t.Helper()
	tok, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestPublishedVectors(t *testing.T) {
	tok := tokenizer(t)
	f := loadVectors(t)
	checked := 0
	for _, v := range f.Vectors {
		got := tok.Encode(v.Text).IDs
		if v.Variant != "" {
			// Produced by HF's slow tokenizer without ftfy, which splits CJK
			// ideographs into words; this package deliberately does not.
			if slices.Equal(got, v.IDs) {
				t.Errorf("%s %q: matches the %s variant, which this package must not emulate", v.Src, v.Text, v.Variant)
			}
			continue
		}
		if !slices.Equal(got, v.IDs) {
			t.Errorf("%s %q:\n got  %v\n want %v", v.Src, v.Text, got, v.IDs)
		}
		checked++
	}
	for _, p := range f.Padded {
		text := strings.Repeat(p.Repeat[0].(string)+p.Repeat[2].(string), int(p.Repeat[1].(float64)))
		text = strings.TrimSuffix(text, p.Repeat[2].(string))
		got := tok.Encode(text).Padded(ContextLength)
		if len(got) != ContextLength || !slices.Equal(got[:len(p.Head)], p.Head) || !slices.Equal(got[len(got)-len(p.Tail):], p.Tail) {
			t.Errorf("%s padded %q: got %v, want head %v tail %v", p.Src, text, got, p.Head, p.Tail)
		}
		checked++
	}
	// 41 text vectors (one more is the CJK variant) and 3 padded cases.
	if checked != 44 {
		t.Errorf("checked %d vectors, want 44", checked)
	}
}

// TestCJKNotSplit pins the deliberate choice of not splitting ideographs: the
// ids are those of OpenAI's SimpleTokenizer as an earlier prototype of this
// tokenizer reproduced it (a regression check, not independent ground
// truth).
func TestCJKNotSplit(t *testing.T) {
	got := tokenizer(t).Encode("日本の石灯籠").IDs
	want := []int32{49406, 39121, 44353, 21575, 163, 253, 111, 163, 223, 107, 163, 109, 510, 49407}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestSpans(t *testing.T) {
	tok := tokenizer(t)
	text := "A  Photo of a CAT, don’t!"
	enc := tok.Encode(text)
	type tokSpan struct {
		tok  string
		text string
	}
	var got []tokSpan
	for i := range enc.IDs {
		got = append(got, tokSpan{enc.Tokens[i], text[enc.Spans[i].Start:enc.Spans[i].End]})
	}
	want := []tokSpan{
		{"<|startoftext|>", ""}, {"a</w>", "A"}, {"photo</w>", "Photo"}, {"of</w>", "of"}, {"a</w>", "a"},
		{"cat</w>", "CAT"}, {",</w>", ","}, {"don</w>", "don"}, {"'t</w>", "’t"}, {"!</w>", "!"}, {"<|endoftext|>", ""},
	}
	if !slices.Equal(got, want) {
		t.Errorf("tokens and span texts:\n got  %q\n want %q", got, want)
	}
	if enc.Spans[len(enc.Spans)-1] != (Span{len(text), len(text)}) {
		t.Errorf("EOS span %v, want empty at the end", enc.Spans[len(enc.Spans)-1])
	}
	// The curly quote is 3 bytes but one UTF-16 unit.
	u := utf16.Encode([]rune(text))
	for i, s := range enc.UTF16 {
		b := enc.Spans[i]
		if string(utf16.Decode(u[s.Start:s.End])) != text[b.Start:b.End] {
			t.Errorf("token %d: UTF-16 span %v and byte span %v cover different text", i, s, b)
		}
	}
}

func TestCleaningRepairs(t *testing.T) {
	tok := tokenizer(t)
	for _, c := range []struct{ typed, plain string }{
		{"don’t “stop”", `don't "stop"`},
		{"cafe\u0301", "café"},                     // NFC
		{"ＣＡＴ　ｆｉｓｈ", "cat fish"},                   // full width, ideographic space
		{"ﬁsh", "fish"},                            // ligature
		{"cat\u200b\ufeff\x07dog", "cat\u200bdog"}, // BOM and BEL dropped, ZWSP kept (ftfy keeps it)
		{"ΟΔΟΣ ΟΔΟΣ.", "οδος οδος."},               // final sigma becomes ς
	} {
		got, want := tok.Encode(c.typed).IDs, tok.Encode(c.plain).IDs
		if !slices.Equal(got, want) {
			t.Errorf("%q: ids %v, want those of %q: %v", c.typed, got, c.plain, want)
		}
	}
	if got, medial := tok.Encode("ΟΔΟΣ").IDs, tok.Encode("οδοσ").IDs; slices.Equal(got, medial) {
		t.Errorf("final sigma: %v should differ from the medial-sigma spelling", got)
	}
	if got, want := tok.Encode("ΣΟ").IDs, tok.Encode("σο").IDs; !slices.Equal(got, want) {
		t.Errorf("initial sigma: %v, want medial σ %v", got, want)
	}
	enc := tok.Encode("e\u0301!")
	if enc.Spans[1] != (Span{0, 3}) {
		t.Errorf("composed é: span %v, want [0,3) covering e and the combining accent", enc.Spans[1])
	}
}

func TestTruncation(t *testing.T) {
	tok := tokenizer(t)
	words := make([]string, 80)
	for i := range words {
		words[i] = "cat"
	}
	words[75] = "dog" // content token 76: the first past the limit
	text := strings.Join(words, " ")
	enc := tok.Encode(text)
	tr := enc.Truncated
	if tr.Dropped != 5 || tr.First != 76 || text[tr.Start:] != "dog cat cat cat cat" || tr.StartUTF16 != tr.Start {
		t.Errorf("truncation %+v (text from Start: %q)", tr, text[tr.Start:])
	}
	padded := enc.Padded(ContextLength)
	if len(padded) != ContextLength || padded[76] != EOS || padded[75] != enc.IDs[75] {
		t.Errorf("padded overlong prompt ends %v", padded[70:])
	}
	if got := tok.Encode(strings.Join(words[:75], " ")).Truncated; got != (Truncation{}) {
		t.Errorf("75 content tokens fit, got %+v", got)
	}
	for n, want := range map[int][]int32{0: {}, 1: {EOS}, 2: {BOS, EOS}, 3: {BOS, enc.IDs[1], EOS}} {
		if got := enc.Padded(n); !slices.Equal(got, want) {
			t.Errorf("Padded(%d) = %v, want %v", n, got, want)
		}
	}
}

func TestDecodeRoundTrip(t *testing.T) {
	tok := tokenizer(t)
	for _, text := range []string{"a photo of a cat", "emoji 🎨 and café", "don't stop 42 times"} {
		ids := tok.Encode(text).IDs
		got, err := tok.Decode(ids[1 : len(ids)-1])
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(strings.Fields(got), " ") != strings.Join(strings.Fields(strings.ReplaceAll(text, "'", " '")), " ") &&
			strings.ReplaceAll(got, " ", "") != strings.ReplaceAll(text, " ", "") {
			t.Errorf("Decode(Encode(%q)) = %q", text, got)
		}
	}
	if _, err := tok.Decode([]int32{VocabSize}); err == nil {
		t.Error("Decode accepted an id outside the vocabulary")
	}
}

// referenceBPE is CLIP's bpe() transcribed literally (quadratic, string
// based); the heap version must agree with it on every word.
type referenceBPE struct {
	tok   *Tokenizer
	enc   map[string]int32
	ranks map[[2]string]int32
}

func newReferenceBPE(t *Tokenizer) *referenceBPE {
	r := &referenceBPE{tok: t, enc: map[string]int32{}, ranks: map[[2]string]int32{}}
	for id, s := range t.vocab {
		r.enc[s] = int32(id)
	}
	for k, m := range t.merges {
		r.ranks[[2]string{t.vocab[int32(k>>32)], t.vocab[int32(uint32(k))]}] = m.rank
	}
	return r
}

func (ref *referenceBPE) bpe(piece string) []int32 {
	t, enc, ranks := ref.tok, ref.enc, ref.ranks
	var word []string
	for i := 0; i < len(piece); i++ {
		word = append(word, t.vocab[t.byteSymbol[piece[i]]])
	}
	word[len(word)-1] += endOfWord
	for len(word) > 1 {
		best, bestRank := [2]string{}, int32(-1)
		for i := 0; i+1 < len(word); i++ {
			if r, ok := ranks[[2]string{word[i], word[i+1]}]; ok && (bestRank < 0 || r < bestRank) {
				best, bestRank = [2]string{word[i], word[i+1]}, r
			}
		}
		if bestRank < 0 {
			break
		}
		var next []string
		for i := 0; i < len(word); {
			if i+1 < len(word) && word[i] == best[0] && word[i+1] == best[1] {
				next = append(next, best[0]+best[1])
				i += 2
			} else {
				next = append(next, word[i])
				i++
			}
		}
		word = next
	}
	ids := make([]int32, len(word))
	for i, s := range word {
		ids[i] = enc[s]
	}
	return ids
}

func TestBPEMatchesReferenceAlgorithm(t *testing.T) {
	tok := tokenizer(t)
	rng := rand.New(rand.NewPCG(1, 2))
	alphabets := []string{"abcdefghijklmnopqrstuvwxyz", "aeiou", "ab", "éèàçœ", "日本語の", "!?.,-"}
	var scratch bpeScratch
	ref := newReferenceBPE(tok)
	for i := range 3000 {
		alpha := []rune(alphabets[i%len(alphabets)])
		n := 1 + rng.IntN(24)
		if i%100 == 0 {
			n = 200 + rng.IntN(300)
		}
		var b strings.Builder
		for range n {
			b.WriteRune(alpha[rng.IntN(len(alpha))])
		}
		piece := b.String()
		word := make([]int32, len(piece))
		for k := range len(piece) {
			word[k] = tok.byteSymbol[piece[k]]
		}
		word[len(word)-1] += 256
		got := tok.bpe(word, &scratch)
		if want := ref.bpe(piece); !slices.Equal(got, want) {
			t.Fatalf("%q: heap BPE %v, reference %v", piece, got, want)
		}
	}
}

func TestVocabularyShape(t *testing.T) {
	tok := tokenizer(t)
	for id, want := range map[int32]string{0: "!", 256: "!</w>", 512: "in", BOS: "<|startoftext|>", EOS: "<|endoftext|>", 2368: "cat</w>"} {
		if got, err := tok.TokenString(id); err != nil || got != want {
			t.Errorf("TokenString(%d) = %q, %v; want %q", id, got, err, want)
		}
	}
	if _, err := newFromMerges(strings.NewReader("#version: 0.2\ni n\n")); err == nil || !strings.Contains(err.Error(), "ends after 1 merges") {
		t.Errorf("short merges file: err = %v", err)
	}
	if _, err := newFromMerges(strings.NewReader("#version: 0.2\nin n\n")); err == nil || !strings.Contains(err.Error(), "not defined by an earlier line") {
		t.Errorf("undefined symbol: err = %v", err)
	}
}

// checkEncoding holds for every text: spans within the text on character
// boundaries, in order, parallel slices, BOS first and EOS last.
func checkEncoding(t *testing.T, tok *Tokenizer, text string) {
	enc := tok.Encode(text)
	n := len(enc.IDs)
	if n < 2 || enc.IDs[0] != BOS || enc.IDs[n-1] != EOS || len(enc.Tokens) != n || len(enc.Spans) != n || len(enc.UTF16) != n {
		t.Fatalf("%q: malformed encoding %+v", text, enc)
	}
	units := 0
	for _, r := range text { // an invalid byte is one U+FFFD
		units += utf16.RuneLen(r)
	}
	prev := 0
	for i, s := range enc.Spans {
		if s.Start < 0 || s.Start > s.End || s.End > len(text) || s.Start < prev {
			t.Fatalf("%q: token %d span %v out of order or outside the text", text, i, s)
		}
		if !boundary(text, s.Start) || !boundary(text, s.End) {
			t.Fatalf("%q: token %d span %v not on character boundaries", text, i, s)
		}
		if u := enc.UTF16[i]; u.Start < 0 || u.Start > u.End || u.End > units {
			t.Fatalf("%q: token %d UTF-16 span %v outside [0,%d]", text, i, u, units)
		}
		if (enc.IDs[i] >= VocabSize) || enc.IDs[i] < 0 {
			t.Fatalf("%q: id %d", text, enc.IDs[i])
		}
		prev = s.Start
	}
	if tr := enc.Truncated; (tr.Dropped > 0) != (n > ContextLength) {
		t.Fatalf("%q: %d ids but truncation %+v", text, n, tr)
	}
	if p := enc.Padded(ContextLength); len(p) != ContextLength || p[ContextLength-1] != EOS {
		t.Fatalf("%q: padded %v", text, p)
	}
}

// boundary reports whether byte offset i starts a character as Encode reads
// the text (an invalid byte is a character of its own).
func boundary(text string, i int) bool {
	for k := 0; k < len(text); {
		if k == i {
			return true
		}
		_, w := utf8.DecodeRuneInString(text[k:])
		k += w
	}
	return i == len(text)
}

func FuzzEncode(f *testing.F) {
	for _, s := range []string{"", "a photo of a cat", "don’t “stop”", "e\u0301\u0301x", "\xff\xfe a", "ΟΔΟΣ.", "<|endoftext|>x", "ＣＡＴ　ﬁ", "🎨🎨", strings.Repeat("ab", 300)} {
		f.Add(s)
	}
	tok := tokenizer(f)
	f.Fuzz(func(t *testing.T, text string) {
		checkEncoding(t, tok, text)
	})
}

func BenchmarkLoadVocabulary(b *testing.B) {
	for b.Loop() {
		if _, err := New(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodePrompt(b *testing.B) {
	tok := tokenizer(b)
	const prompt = "a beautiful painting of a squirrel eating a burger, highly detailed, trending on artstation, 8k"
	for b.Loop() {
		tok.Encode(prompt)
	}
}

func BenchmarkEncode77Tokens(b *testing.B) {
	tok := tokenizer(b)
	prompt := strings.Repeat("photorealistic portrait of a woman, ", 13)
	for b.Loop() {
		tok.Encode(prompt)
	}
}

// Padding per tokenizer: SD 2.x's tokenizer (and SDXL's second) pads with
// "!" (id 0) after EOS, as Hugging Face's CLIPTokenizer with pad_token "!"
// gives "a photo of a cat" [49406, 320, 1125, 539, 320, 2368, 49407, 0, …];
// SD 1.x's with EOS. The ids up to EOS, which alignment reads, are the same.
func TestPaddedWithPadToken(t *testing.T) {
	tok := tokenizer(t)
	for token, want := range map[string]int32{"": EOS, "<|endoftext|>": EOS, "!": 0, "!</w>": 256, "<|startoftext|>": BOS} {
		if got, err := tok.PadID(token); err != nil || got != want {
			t.Errorf("PadID(%q) = %d, %v; want %d", token, got, err, want)
		}
	}
	if _, err := tok.PadID("[PAD]"); err == nil || !strings.Contains(err.Error(), `"[PAD]" is not in CLIP's vocabulary`) {
		t.Errorf("PadID of a token outside the vocabulary: %v", err)
	}
	enc := tok.Encode("a photo of a cat")
	bang, _ := tok.PadID("!")
	sd2 := enc.PaddedWith(ContextLength, bang)
	head := []int32{49406, 320, 1125, 539, 320, 2368, 49407}
	if len(sd2) != ContextLength || !slices.Equal(sd2[:len(head)], head) {
		t.Fatalf("SD 2.x padding starts %v, want %v", sd2[:len(head)], head)
	}
	for i, id := range sd2[len(head):] {
		if id != 0 {
			t.Fatalf("SD 2.x padding: id %d at %d, want 0", id, len(head)+i)
		}
	}
	sd1 := enc.Padded(ContextLength)
	if !slices.Equal(sd1[:len(head)], head) || sd1[ContextLength-1] != EOS || !slices.Equal(sd1, enc.PaddedWith(ContextLength, EOS)) {
		t.Errorf("SD 1.x padding: %v", sd1[:10])
	}
	// An overlong prompt keeps EOS last under either pad, and the short
	// lengths behave as Padded's.
	long := tok.Encode(strings.Repeat("cat ", 90))
	if got := long.PaddedWith(ContextLength, 0); got[ContextLength-1] != EOS || !slices.Equal(got, long.Padded(ContextLength)) {
		t.Errorf("overlong prompt padded with 0 ends %v", got[70:])
	}
	for n, want := range map[int][]int32{0: {}, 1: {EOS}, 2: {BOS, EOS}, 8: {BOS, 320, 1125, 539, 320, 2368, EOS, 0}} {
		if got := enc.PaddedWith(n, 0); !slices.Equal(got, want) {
			t.Errorf("PaddedWith(%d, 0) = %v, want %v", n, got, want)
		}
	}
}
