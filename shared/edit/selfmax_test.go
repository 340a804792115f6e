package edit

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestSelfMaxTokens: the optional self_max_tokens field is in the JSON
// form and a link, resolves to 0 (the model's default) when omitted,
// survives the echo of a resolved spec, and is refused out of range with
// what is allowed.
func TestSelfMaxTokens(t *testing.T) {
	s := Spec{Source: "a cat", Targets: []string{"a dog"}, Seed: ptr(uint64(3)), SelfMaxTokens: ptr(1024)}
	js, err := json.Marshal(s)
	if err != nil || !strings.Contains(string(js), `"self_max_tokens":1024`) {
		t.Fatalf("JSON form %s, %v", js, err)
	}
	link, err := EncodeLink(s)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeLink(link)
	if err != nil || !reflect.DeepEqual(back, s) {
		t.Errorf("link round trip: %+v, %v; want %+v", back, err, s)
	}
	// A link made before the field existed opens with the model's default.
	old := encodeRaw(t, []byte(`{"source":"a cat","targets":["a dog"],"seed":3}`))
	if back, err := DecodeLink(old); err != nil || back.SelfMaxTokens != nil {
		t.Errorf("link without self_max_tokens: %+v, %v", back, err)
	}

	d := tinyDefaults("tiny")
	r, err := s.Resolve(d)
	if err != nil || r.SelfMaxTokens != 1024 {
		t.Fatalf("resolved %d, %v; want 1024", r.SelfMaxTokens, err)
	}
	if echo := r.Spec(); echo.SelfMaxTokens == nil || *echo.SelfMaxTokens != 1024 {
		t.Errorf("echoed spec lost self_max_tokens: %v", echo.SelfMaxTokens)
	}
	s.SelfMaxTokens = nil
	if r, err = s.Resolve(d); err != nil || r.SelfMaxTokens != 0 || r.Spec().SelfMaxTokens != nil {
		t.Errorf("omitted: resolved %d, echo %v, %v; want 0 and none", r.SelfMaxTokens, r.Spec().SelfMaxTokens, err)
	}
	c := s.Clone()
	c.SelfMaxTokens = ptr(64)
	if cc := c.Clone(); cc.SelfMaxTokens == c.SelfMaxTokens {
		t.Error("Clone shares self_max_tokens")
	}

	for _, n := range []int{0, -1, MaxSelfMaxTokens + 1} {
		s.SelfMaxTokens = ptr(n)
		err := s.Validate(d)
		var p Problems
		if !errors.As(err, &p) || len(p) != 1 || p[0].Field != "self_max_tokens" ||
			!strings.Contains(p[0].Message, "must be a count of query positions from 1 to 1048576") {
			t.Errorf("self_max_tokens %d: %v", n, err)
		}
	}
	s.SelfMaxTokens = ptr(MaxSelfMaxTokens)
	if err := s.Validate(d); err != nil {
		t.Errorf("self_max_tokens %d: %v", MaxSelfMaxTokens, err)
	}
}

// TestSelfLayersWithin: a limit takes the layers whose grid has at most
// that many positions, and says which in words the editor shows.
func TestSelfLayersWithin(t *testing.T) {
	d := tinyDefaults("tiny")
	if n, of, words := d.SelfLayersWithin(256); n != 0 || of != 0 || words != "" {
		t.Errorf("without layers: %d of %d, %q", n, of, words)
	}
	// The tiny model's: 4 layers at 4×4, 3 at 8×8, 3 at 16×16.
	d.SelfLayers = []SelfLayerGroup{{Size{4, 4}, 4}, {Size{8, 8}, 3}, {Size{16, 16}, 3}}
	for _, c := range []struct {
		limit, layers int
		words         string
	}{
		{1, 0, "none"}, {15, 0, "none"}, {16, 4, "4×4 only"}, {63, 4, "4×4 only"},
		{64, 7, "8×8 and coarser"}, {256, 10, "16×16 and coarser"}, {MaxSelfMaxTokens, 10, "16×16 and coarser"},
	} {
		if n, of, words := d.SelfLayersWithin(c.limit); n != c.layers || of != 10 || words != c.words {
			t.Errorf("limit %d: %d of %d layers, %q; want %d of 10, %q", c.limit, n, of, words, c.layers, c.words)
		}
	}
	d.SelfLayers = d.SelfLayers[2:]
	if n, of, words := d.SelfLayersWithin(300); n != 3 || of != 3 || words != "16×16" {
		t.Errorf("one grid: %d of %d, %q", n, of, words)
	}
	d.SelfMaxTokens, d.PhotoSelfMaxTokens = 256, 1024
	if d.DefaultSelfMaxTokens(false) != 256 || d.DefaultSelfMaxTokens(true) != 1024 {
		t.Errorf("defaults: %d, %d", d.DefaultSelfMaxTokens(false), d.DefaultSelfMaxTokens(true))
	}
}
