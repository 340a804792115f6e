package clip

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"flag"
	"io"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "regenerate clip_merges.txt.gz from bpe_simple_vocab_16e6.txt.gz")

// usedLines returns the header line and the first numMerges merge lines of
// a gzipped merges file, each with its newline.
func usedLines(t *testing.T, gz []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(zr)
	var out []byte
	for range numMerges + 1 {
		line, err := br.ReadBytes('\n')
		if err != nil {
			t.Fatalf("reading merges: %v", err)
		}
		out = append(out, line...)
	}
	return out
}

func TestEmbeddedVocabularyIsPrefix(t *testing.T) {
	full, err := os.ReadFile("bpe_simple_vocab_16e6.txt.gz")
	if err != nil {
		t.Fatal(err)
	}
	want := usedLines(t, full)
	if *update {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		zw.Write(want)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("clip_merges.txt.gz", buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		vocabGz = buf.Bytes()
	}
	zr, err := gzip.NewReader(bytes.NewReader(vocabGz))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("embedded merges (%d bytes) are not the first %d lines of bpe_simple_vocab_16e6.txt.gz (%d bytes); run go test -run TestEmbeddedVocabularyIsPrefix -update", len(got), numMerges+1, len(want))
	}
}
