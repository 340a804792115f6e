package edit

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// TestKeepSourceText: the opt-in keep_source_text is left out of the JSON
// form when off, is in it and in a link when on, survives the echo of a
// resolved spec, and a link made before the field existed opens with it
// off.
func TestKeepSourceText(t *testing.T) {
	s := Spec{Source: "a red circle", Targets: []string{"a blue circle"}, Seed: ptr(uint64(3))}
	js, err := json.Marshal(s)
	if err != nil || strings.Contains(string(js), "keep_source_text") {
		t.Fatalf("off: JSON form %s, %v; want the field left out", js, err)
	}
	s.KeepSourceText = true
	if js, err = json.Marshal(s); err != nil || !strings.Contains(string(js), `"keep_source_text":true`) {
		t.Fatalf("on: JSON form %s, %v", js, err)
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
	old := encodeRaw(t, []byte(`{"source":"a red circle","targets":["a blue circle"],"seed":3}`))
	if back, err := DecodeLink(old); err != nil || back.KeepSourceText {
		t.Errorf("link without keep_source_text: %+v, %v; want it off", back, err)
	}

	r, err := s.Resolve(tinyDefaults("tiny"))
	if err != nil || !r.KeepSourceText {
		t.Fatalf("resolved keep_source_text %v, %v; want true", r.KeepSourceText, err)
	}
	if echo := r.Spec(); !echo.KeepSourceText {
		t.Error("the echoed spec lost keep_source_text")
	}
	if _, err := ParseSpec([]byte(`{"source":"a","targets":["b"],"keep_source_text":"yes"}`)); err == nil ||
		!strings.Contains(err.Error(), "keep_source_text") {
		t.Errorf("a string for keep_source_text: %v; want an error naming the field", err)
	}
}
