package edit

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// TestNormWindow: the norm window is left out of the JSON form when
// omitted, round-trips through JSON and links when set, resolves to the
// model's default when omitted and to an empty window when empty, is
// always set in the echo (so that the echo resolves alike under any
// default), and reaches the alignment.
func TestNormWindow(t *testing.T) {
	s := Spec{Source: "a red circle", Targets: []string{"a blue circle"}, Seed: ptr(uint64(3))}
	js, err := json.Marshal(s)
	if err != nil || strings.Contains(string(js), `"norm"`) {
		t.Fatalf("omitted: JSON form %s, %v; want the field left out", js, err)
	}
	r, err := s.Resolve(tinyDefaults("tiny"))
	if err != nil || r.Norm != (Window{}) || r.AlignConfig().Norm.End != 0 {
		t.Fatalf("omitted, no default: resolved %+v, %v; want an empty window", r.Norm, err)
	}
	if echo := r.Spec(); echo.Norm == nil || *echo.Norm != (Window{}) {
		t.Errorf("omitted, no default: echo %v; want an explicit empty window", echo.Norm)
	}
	withDefault := tinyDefaults("tiny")
	withDefault.Norm = Fraction(0.4)
	if r, err = s.Resolve(withDefault); err != nil || r.Norm != Fraction(0.4) || r.AlignConfig().Norm.End != 0.4 {
		t.Fatalf("omitted, default 0.4: resolved %+v, %v; want the default", r.Norm, err)
	}
	if again, err := r.Spec().Resolve(tinyDefaults("tiny")); err != nil || again.Norm != Fraction(0.4) {
		t.Errorf("the echo of a defaulted norm resolved without the default: %+v, %v; want [0, 0.4)", again.Norm, err)
	}
	off := s.Clone()
	off.Norm = ptr(Window{})
	if js, err = json.Marshal(off); err != nil || !strings.Contains(string(js), `"norm":0`) {
		t.Errorf("explicitly off: JSON form %s, %v; want \"norm\":0", js, err)
	}
	if r, err = off.Resolve(withDefault); err != nil || r.Norm != (Window{}) {
		t.Errorf("explicitly off under default 0.4: resolved %+v, %v; want it off", r.Norm, err)
	}
	if again, err := r.Spec().Resolve(withDefault); err != nil || again.Norm != (Window{}) {
		t.Errorf("the echo of an explicit off resolved to %+v, %v under the default; want it off", again.Norm, err)
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
	if r, err = s.Resolve(withDefault); err != nil || r.Norm != (Window{}) {
		t.Errorf("an empty window [0.3, 0.3) under default 0.4: resolved %+v, %v; want it off", r.Norm, err)
	}
	if _, err := ParseSpec([]byte(`{"source":"a","targets":["b"],"norm":"early"}`)); err == nil ||
		!strings.Contains(err.Error(), "window") {
		t.Errorf("a string for norm: %v; want an error saying what a window is", err)
	}
}

// TestNormInOlderLinks: v2 links ran norm as the source's GroupNorm mean
// and variance, which no build runs any more, so a v2 link that sets a
// norm window is refused with a message that says why; a v2 link without
// one opens as it ran, with the window off whatever the model's default
// (no v2 build had one), an empty one as it is, and the current version
// carries the window and leaves an omitted one to the default.
func TestNormInOlderLinks(t *testing.T) {
	withNorm := encodeRawV2(t, []byte(`{"source":"a red circle","targets":["a blue circle"],"seed":3,"norm":0.4}`))
	if _, err := DecodeLink(withNorm); err == nil || !strings.Contains(err.Error(), "version 2") ||
		!strings.Contains(err.Error(), "mean alone") {
		t.Errorf("a v2 link with a norm window: %v; want a refusal naming the version and what changed", err)
	}
	for js, norm := range map[string]Window{
		`{"source":"a red circle","targets":["a blue circle"],"seed":3,"keep_source_text":true}`: {},
		`{"source":"a red circle","targets":["a blue circle"],"seed":3,"norm":[0.3,0.3]}`:        {0.3, 0.3},
	} {
		s, err := DecodeLink(encodeRawV2(t, []byte(js)))
		want, perr := ParseSpec([]byte(js))
		want.Norm = &norm
		want.Cross, want.CrossChanged, want.BlendChanged, want.DecodeNorm = ptr(Fraction(0.8)), ptr(Fraction(0.8)), ptr(false), DecodeNormOwn
		want.BlendReweighted = ptr(false)
		if err != nil || perr != nil || !reflect.DeepEqual(s, want) {
			t.Errorf("v2 link of %s: %+v, %v; want %+v", js, s, err, want)
		}
		withDefault := tinyDefaults("tiny")
		withDefault.Norm = Fraction(0.4)
		if r, err := s.Resolve(withDefault); err != nil || r.Norm != (Window{}) {
			t.Errorf("v2 link of %s under a norm default: resolved %+v, %v; want it off", js, r.Norm, err)
		}
	}
	s := Spec{Source: "a red circle", Targets: []string{"a blue circle"}, Norm: ptr(Fraction(0.4))}
	link, err := EncodeLink(s)
	if err != nil || !strings.HasPrefix(link, "v6.") {
		t.Fatalf("EncodeLink: %q, %v; want a v6 link", link, err)
	}
	if back, err := DecodeLink(link); err != nil || back.Norm == nil || *back.Norm != Fraction(0.4) {
		t.Errorf("v6 round trip of norm: %+v, %v", back.Norm, err)
	}
	s.Norm = nil
	if link, err = EncodeLink(s); err != nil {
		t.Fatal(err)
	}
	if back, err := DecodeLink(link); err != nil || back.Norm != nil {
		t.Errorf("v6 link without norm decoded to %+v, %v; want it left to the model's default", back.Norm, err)
	}
}
