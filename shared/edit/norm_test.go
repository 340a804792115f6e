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
