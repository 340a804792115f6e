package edit

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// TestNormWindow: the opt-in norm window is left out of the JSON form when
// omitted, round-trips through JSON and links when set, resolves to an
// empty window when omitted or empty (and the echo then leaves it out, as
// every spec before the field ran), survives the echo when set, and
// reaches the alignment.
func TestNormWindow(t *testing.T) {
	s := Spec{Source: "a red circle", Targets: []string{"a blue circle"}, Seed: ptr(uint64(3))}
	js, err := json.Marshal(s)
	if err != nil || strings.Contains(string(js), `"norm"`) {
		t.Fatalf("omitted: JSON form %s, %v; want the field left out", js, err)
	}
	r, err := s.Resolve(tinyDefaults("tiny"))
	if err != nil || r.Norm != (Window{}) || r.Spec().Norm != nil || r.AlignConfig().Norm.End != 0 {
		t.Fatalf("omitted: resolved %+v, echo %v, %v; want an empty window, left out of the echo", r.Norm, r.Spec().Norm, err)
	}

	s.Norm = ptr(Fraction(0.4))
	if js, err = json.Marshal(s); err != nil || !strings.Contains(string(js), `"norm":0.4`) {
		t.Fatalf("set: JSON form %s, %v", js, err)
	}
	parsed, err := ParseSpec(js)
	if err != nil || !reflect.DeepEqual(parsed, s) {
		t.Errorf("JSON round trip: %+v, %v; want %+v", parsed, err, s)
	}
	link, err := EncodeLink(s)
	if err != nil {
		t.Fatal(err)
	}
	if back, err := DecodeLink(link); err != nil || !reflect.DeepEqual(back, s) {
		t.Errorf("link round trip: %+v, %v; want %+v", back, err, s)
	}
	r, err = s.Resolve(tinyDefaults("tiny"))
	if err != nil || r.Norm != Fraction(0.4) {
		t.Fatalf("resolved norm %+v, %v; want [0, 0.4)", r.Norm, err)
	}
	if echo := r.Spec(); echo.Norm == nil || *echo.Norm != Fraction(0.4) {
		t.Errorf("the echoed spec's norm is %v, want [0, 0.4)", echo.Norm)
	}
	if got := r.AlignConfig().Norm; got.Start != 0 || got.End != 0.4 {
		t.Errorf("alignment's norm window %+v, want [0, 0.4)", got)
	}
	clone := s.Clone()
	clone.Norm.End = 0.9
	if s.Norm.End != 0.4 {
		t.Error("editing a clone's norm window changed the original")
	}

	s.Norm = ptr(Window{0.3, 0.3})
	if r, err = s.Resolve(tinyDefaults("tiny")); err != nil || r.Norm != (Window{}) || r.Spec().Norm != nil {
		t.Errorf("an empty window [0.3, 0.3): resolved %+v, %v; want it off and left out of the echo", r.Norm, err)
	}
	if _, err := ParseSpec([]byte(`{"source":"a","targets":["b"],"norm":"early"}`)); err == nil ||
		!strings.Contains(err.Error(), "window") {
		t.Errorf("a string for norm: %v; want an error saying what a window is", err)
	}
}

// TestNormInOlderLinks: v2 links ran norm as the source's GroupNorm mean
// and variance, which no build runs any more, so a v2 link that sets a
// norm window is refused with a message that says why; a v2 link without
// one (or with an empty one) opens as it ran, and the current version
// carries the window.
func TestNormInOlderLinks(t *testing.T) {
	withNorm := encodeRawV2(t, []byte(`{"source":"a red circle","targets":["a blue circle"],"seed":3,"norm":0.4}`))
	if _, err := DecodeLink(withNorm); err == nil || !strings.Contains(err.Error(), "version 2") ||
		!strings.Contains(err.Error(), "mean alone") {
		t.Errorf("a v2 link with a norm window: %v; want a refusal naming the version and what changed", err)
	}
	for _, js := range []string{
		`{"source":"a red circle","targets":["a blue circle"],"seed":3,"keep_source_text":true}`,
		`{"source":"a red circle","targets":["a blue circle"],"seed":3,"norm":[0.3,0.3]}`,
	} {
		s, err := DecodeLink(encodeRawV2(t, []byte(js)))
		want, perr := ParseSpec([]byte(js))
		if err != nil || perr != nil || !reflect.DeepEqual(s, want) {
			t.Errorf("v2 link of %s: %+v, %v; want %+v", js, s, err, want)
		}
	}
	s := Spec{Source: "a red circle", Targets: []string{"a blue circle"}, Norm: ptr(Fraction(0.4))}
	link, err := EncodeLink(s)
	if err != nil || !strings.HasPrefix(link, "v3.") {
		t.Fatalf("EncodeLink: %q, %v; want a v3 link", link, err)
	}
	if back, err := DecodeLink(link); err != nil || back.Norm == nil || *back.Norm != Fraction(0.4) {
		t.Errorf("v3 round trip of norm: %+v, %v", back.Norm, err)
	}
}
