package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestTokenizeJSON(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"tokenize", "--json", "A photo of a CAT"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var got tokenizeJSON
	dec := json.NewDecoder(&out)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	// Published SD 1.x ids of "a photo of a cat" (shared/clip/testdata).
	if want := []int32{49406, 320, 1125, 539, 320, 2368, 49407}; !slices.Equal(got.IDs, want) {
		t.Errorf("ids %v, want %v", got.IDs, want)
	}
	if got.Tokens[5] != "cat</w>" || got.Offsets[5] != [2]int{13, 16} || got.Offsets[6] != [2]int{16, 16} {
		t.Errorf("token 5 %q at %v, EOS at %v", got.Tokens[5], got.Offsets[5], got.Offsets[6])
	}
}

func TestTokenizeTableReportsTruncation(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"tokenize", strings.Repeat("cat ", 80)}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if !strings.Contains(out.String(), "truncated: 5 tokens past the 77-token context") {
		t.Errorf("output does not report truncation:\n%s", out.String())
	}
	if code := run([]string{"tokenize", "a", "b"}, &out, &errb); code != 2 {
		t.Errorf("two arguments: exit %d", code)
	}
}

func TestLinkEncodeDecode(t *testing.T) {
	spec := `{"source":"a cat on a mat","targets":["a dog on a mat"],"seed":42,"reweights":{"dog":1.5}}`
	path := filepath.Join(t.TempDir(), "spec.json")
	if err := os.WriteFile(path, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{"link", "encode", path}, &out, &errb); code != 0 {
		t.Fatalf("encode: exit %d: %s", code, errb.String())
	}
	link := strings.TrimSpace(out.String())
	if !strings.HasPrefix(link, "v6.") {
		t.Fatalf("link %q", link)
	}
	out.Reset()
	if code := run([]string{"link", "decode", "https://example.org/#" + link}, &out, &errb); code != 0 {
		t.Fatalf("decode: exit %d: %s", code, errb.String())
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, out.Bytes()); err != nil || compact.String() != spec {
		t.Errorf("decoded %s (%v), want %s", compact.String(), err, spec)
	}
	errb.Reset()
	if code := run([]string{"link", "decode", link[:len(link)-2] + "AA"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "damaged") {
		t.Errorf("tampered link: exit %d, stderr %q", code, errb.String())
	}
	os.WriteFile(path, []byte(`{"source":"a","targets":["b"],"colour":"red"}`), 0o644)
	errb.Reset()
	if code := run([]string{"link", "encode", path}, &out, &errb); code != 1 || !strings.Contains(errb.String(), `unknown field "colour"`) {
		t.Errorf("unknown field: exit %d, stderr %q", code, errb.String())
	}
	if code := run([]string{"link", "flip", "x"}, &out, &errb); code != 2 {
		t.Errorf("unknown action: exit %d", code)
	}
}
