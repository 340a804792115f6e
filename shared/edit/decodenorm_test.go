package edit

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// TestDecodeNorm: decode_norm is left out of the JSON form and the echo
// where neither the spec nor the model sets it; a value set survives
// JSON, a link and the echo, so that the echo runs the same edit under the
// model's default; the model's default applies where the spec leaves it
// out; anything else is refused, naming the field and every value.
func TestDecodeNorm(t *testing.T) {
	s := Spec{Source: "a red circle", Targets: []string{"a blue circle"}, Seed: ptr(uint64(3))}
	if js, err := json.Marshal(s); err != nil || strings.Contains(string(js), "decode_norm") {
		t.Fatalf("left out: JSON form %s, %v", js, err)
	}
	s.DecodeNorm = DecodeNormSource
	js, err := json.Marshal(s)
	if err != nil || !strings.Contains(string(js), `"decode_norm":"source"`) {
		t.Fatalf("source: JSON form %s, %v", js, err)
	}
	if parsed, err := ParseSpec(js); err != nil || !reflect.DeepEqual(parsed, s) {
		t.Errorf("JSON round trip: %+v, %v; want %+v", parsed, err, s)
	}
	link, err := EncodeLink(s)
	if err != nil {
		t.Fatal(err)
	}
	if back, err := DecodeLink(link); err != nil || !reflect.DeepEqual(back, s) {
		t.Errorf("link round trip: %+v, %v; want %+v", back, err, s)
	}
	for value, want := range map[string]string{DecodeNormSource: DecodeNormSource, DecodeNormSwaps: DecodeNormSwaps, DecodeNormOwn: DecodeNormOwn, "": ""} {
		s.DecodeNorm = value
		r, err := s.Resolve(tinyDefaults("tiny"))
		if err != nil || r.DecodeNorm != want || r.Spec().DecodeNorm != want {
			t.Errorf("decode_norm %q: resolved %q, echoed %q, %v; want %q", value, r.DecodeNorm, r.Spec().DecodeNorm, err, want)
		}
	}
	// A model's default applies where the spec leaves the field out.
	d := tinyDefaults("tiny")
	d.DecodeNorm = DecodeNormSource
	for value, want := range map[string]string{"": DecodeNormSource, DecodeNormOwn: DecodeNormOwn, DecodeNormSource: DecodeNormSource} {
		s.DecodeNorm = value
		if r, err := s.Resolve(d); err != nil || r.DecodeNorm != want || r.Spec().DecodeNorm != want {
			t.Errorf("decode_norm %q under the model's default source: resolved %q, %v; want %q", value, r.DecodeNorm, err, want)
		}
	}
	s.DecodeNorm = "target"
	if _, err := s.Resolve(tinyDefaults("tiny")); err == nil || !strings.Contains(err.Error(), "decode_norm") ||
		!strings.Contains(err.Error(), `"own"`) || !strings.Contains(err.Error(), `"source"`) || !strings.Contains(err.Error(), `"swaps"`) {
		t.Errorf("decode_norm %q: %v; want a problem naming the field and every value", s.DecodeNorm, err)
	}
}
