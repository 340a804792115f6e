package clip

import (
	"bufio"
	"bytes"
	"compress/gzip"
	_ "embed"
	"fmt"
	"io"
	"strings"
	"sync"
	"unicode/utf8"
)

// vocabGz is the part of OpenAI CLIP's merges file that CLIP uses: the
// header line and the first numMerges merges of bpe_simple_vocab_16e6.txt.gz
// (MIT licence, see LICENSE here). The full file is 1.36 MB compressed, this
// part 0.2 MB; embedding only it keeps the browser's download 1.15 MB
// smaller. TestEmbeddedVocabularyIsPrefix checks it against the full file and
// regenerates it with -update.
//
//go:embed clip_merges.txt.gz
var vocabGz []byte

// numMerges is how many merges of the file CLIP uses: the vocabulary has
// 49,408 entries = 2·256 byte symbols + merges + 2 special tokens.
const numMerges = VocabSize - 2*256 - 2

// endOfWord marks a symbol that ends a word in CLIP's vocabulary.
const endOfWord = "</w>"

// merge is one BPE merge rule: the rank decides which adjacent pair merges
// first (lower first); id is the token the pair becomes.
type merge struct {
	rank int32
	id   int32
}

// Tokenizer is the CLIP BPE tokenizer. It is immutable after construction and
// safe for concurrent use.
type Tokenizer struct {
	// vocab[id] is the token's string in CLIP's byte-to-unicode alphabet,
	// e.g. "cat</w>".
	vocab []string
	// byteLen[id] is how many UTF-8 bytes of cleaned text the token covers.
	byteLen []uint16
	// byteSymbol[b] is the id of the single-byte symbol for byte b; the
	// end-of-word variant is byteSymbol[b] + 256.
	byteSymbol [256]int32
	// runeByte maps a rune of the byte-to-unicode alphabet back to its byte.
	runeByte map[rune]byte
	// merges maps a pair of ids (left<<32 | right) to its merge rule.
	merges map[uint64]merge
}

// New parses the embedded vocabulary into a new Tokenizer. Most callers want
// Default, which parses it once per process.
func New() (*Tokenizer, error) {
	zr, err := gzip.NewReader(bytes.NewReader(vocabGz))
	if err != nil {
		return nil, fmt.Errorf("clip: embedded vocabulary is not gzip data: %w", err)
	}
	t, err := newFromMerges(zr)
	if err != nil {
		return nil, fmt.Errorf("clip: embedded vocabulary: %w", err)
	}
	return t, nil
}

// Default returns the process-wide tokenizer, parsing the embedded vocabulary
// on first use.
var Default = sync.OnceValues(New)

// bytesToUnicode returns GPT-2/CLIP's reversible byte → printable-rune table,
// in vocabulary order: printable Latin-1 bytes map to themselves and come
// first, the remaining bytes map to U+0100 onwards.
func bytesToUnicode() (order [256]byte, runes [256]rune) {
	n := 0
	printable := func(b int) bool {
		return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)
	}
	for b := 0; b < 256; b++ {
		if printable(b) {
			order[n], runes[n] = byte(b), rune(b)
			n++
		}
	}
	extra := 0
	for b := 0; b < 256; b++ {
		if !printable(b) {
			order[n], runes[n] = byte(b), rune(256+extra)
			n++
			extra++
		}
	}
	return order, runes
}

// newFromMerges builds the tokenizer from a CLIP merges file: one header line,
// then "left right" pairs; only the first numMerges pairs are used.
func newFromMerges(r io.Reader) (*Tokenizer, error) {
	t := &Tokenizer{
		vocab:    make([]string, 0, VocabSize),
		byteLen:  make([]uint16, 0, VocabSize),
		merges:   make(map[uint64]merge, numMerges),
		runeByte: make(map[rune]byte, 256),
	}
	encoder := make(map[string]int32, VocabSize)
	add := func(s string, n int) {
		// Like the reference's dict(zip(vocab, range)), a repeated string
		// keeps the later id.
		encoder[s] = int32(len(t.vocab))
		t.vocab = append(t.vocab, s)
		t.byteLen = append(t.byteLen, uint16(n))
	}
	order, runes := bytesToUnicode()
	for i := range order {
		t.byteSymbol[order[i]] = int32(i)
		t.runeByte[runes[i]] = order[i]
		add(string(runes[i]), 1)
	}
	for i := range order {
		add(string(runes[i])+endOfWord, 1)
	}

	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<16)
	if !sc.Scan() {
		return nil, fmt.Errorf("merges file is empty: %v", sc.Err())
	}
	type pair struct{ left, right string }
	pairs := make([]pair, 0, numMerges)
	for line := 2; len(pairs) < numMerges; line++ {
		if !sc.Scan() {
			if err := sc.Err(); err != nil {
				return nil, fmt.Errorf("reading merges: %w", err)
			}
			return nil, fmt.Errorf("merges file ends after %d merges, want %d", len(pairs), numMerges)
		}
		left, right, ok := strings.Cut(sc.Text(), " ")
		if !ok || left == "" || right == "" || strings.Contains(right, " ") {
			return nil, fmt.Errorf("merges line %d is %q, want two space-separated symbols", line, sc.Text())
		}
		pairs = append(pairs, pair{left, right})
		lid, lok := encoder[left]
		rid, rok := encoder[right]
		if !lok || !rok {
			return nil, fmt.Errorf("merges line %d (%q) uses a symbol not defined by an earlier line", line, sc.Text())
		}
		add(left+right, int(t.byteLen[lid])+int(t.byteLen[rid]))
	}
	add("<|startoftext|>", 0)
	add("<|endoftext|>", 0)
	if len(t.vocab) != VocabSize || encoder["<|startoftext|>"] != BOS || encoder["<|endoftext|>"] != EOS {
		return nil, fmt.Errorf("vocabulary has %d entries, want %d with BOS %d and EOS %d", len(t.vocab), VocabSize, BOS, EOS)
	}
	for rank, p := range pairs {
		lid, rid := encoder[p.left], encoder[p.right]
		// A repeated pair keeps the later rank, as in the reference's dict.
		t.merges[pairKey(lid, rid)] = merge{rank: int32(rank), id: encoder[p.left+p.right]}
	}
	return t, nil
}

func pairKey(left, right int32) uint64 { return uint64(left)<<32 | uint64(uint32(right)) }

// TokenString returns the vocabulary string of id in CLIP's byte-to-unicode
// alphabet (e.g. "cat</w>"), or an error for an id outside the vocabulary.
func (t *Tokenizer) TokenString(id int32) (string, error) {
	if id < 0 || int(id) >= len(t.vocab) {
		return "", fmt.Errorf("clip: token id %d outside the vocabulary [0, %d)", id, VocabSize)
	}
	return t.vocab[id], nil
}

// PadID returns the id of a tokenizer's pad token as Hugging Face's
// tokenizer_config.json or special_tokens_map.json writes it ("pad_token"):
// a string of CLIP's vocabulary, which Hugging Face looks up as it is
// ("!" is id 0, the single-byte symbol, not "!</w>"). "" means EOS, the pad
// of SD 1.x's tokenizer (and of Reword's models, which state none). A
// string outside the vocabulary is an error: Hugging Face would pad with
// the unknown token there, which no Stable Diffusion tokenizer does.
func (t *Tokenizer) PadID(token string) (int32, error) {
	if token == "" {
		return EOS, nil
	}
	// A linear search: it runs once per model load, and an inverse map
	// would cost every browser tab another 49,408 strings.
	for id, s := range t.vocab {
		if s == token {
			return int32(id), nil
		}
	}
	return 0, fmt.Errorf("clip: pad token %q is not in CLIP's vocabulary (Stable Diffusion tokenizers pad with %q or %q)", token, "<|endoftext|>", "!")
}

// Decode turns ids back into text: the UTF-8 bytes of each token, a space
// after each end-of-word token, special tokens as their names. It returns an
// error for an id outside the vocabulary. Decoding reverses cleaning only
// partly: the text comes back lowercased and with white space normalised.
func (t *Tokenizer) Decode(ids []int32) (string, error) {
	var out []byte
	for _, id := range ids {
		s, err := t.TokenString(id)
		if err != nil {
			return "", err
		}
		if id == BOS || id == EOS {
			out = append(out, s...)
			continue
		}
		word := strings.HasSuffix(s, endOfWord)
		s = strings.TrimSuffix(s, endOfWord)
		for _, r := range s {
			out = append(out, t.runeByte[r])
		}
		if word {
			out = append(out, ' ')
		}
	}
	if !utf8.Valid(out) {
		return strings.ToValidUTF8(string(out), "\uFFFD"), nil
	}
	return string(out), nil
}
