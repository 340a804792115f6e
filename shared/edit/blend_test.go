package edit

import (
	"reflect"
	"strings"
	"testing"

	"reword/shared/clip"
)

func TestBlendJSON(t *testing.T) {
	s, err := ParseSpec([]byte(`{"source":"a cat","targets":["a dog","a cow","a cat"],"blend":[{"words":["cat"]},{"words":[],"exclude":[]},{},{}]}`))
	if err != nil {
		t.Fatal(err)
	}
	// Trailing entries that blend nothing are the same as none.
	if !reflect.DeepEqual(s.Blend, []Blend{{Words: []string{"cat"}}}) {
		t.Errorf("blend parsed as %+v", s.Blend)
	}
	js, _ := s.MarshalJSON()
	if !strings.Contains(string(js), `"blend":[{"words":["cat"]}]`) {
		t.Errorf("canonical JSON %s", js)
	}
	for _, c := range []struct{ in, want string }{
		// The v1 form: a flat list of words.
		{`{"source":"a","targets":["b"],"blend":["circle"]}`, `blend entry "circle": blend words belong to each target; write one entry per target, e.g. [{"words": ["circle"]}]`},
		{`{"source":"a","targets":["b"],"blend":[{"word":["a"]}]}`, `unknown field "word"`},
		{`{"source":"a","targets":["b"],"blend":[{"words":"a"}]}`, "blend entry"},
	} {
		if _, err := ParseSpec([]byte(c.in)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseSpec(%s): err = %v, want it to mention %q", c.in, err, c.want)
		}
	}
}

func TestSetBlendAndDropTarget(t *testing.T) {
	s := Spec{Source: "a cat", Targets: []string{"a dog", "a cow", "a hen"}}
	s.SetBlend(2, Blend{Words: []string{"hen"}})
	if !reflect.DeepEqual(s.Blend, []Blend{{}, {}, {Words: []string{"hen"}}}) {
		t.Fatalf("blend after SetBlend(2): %+v", s.Blend)
	}
	shared := s.Clone()
	s.SetBlend(0, Blend{Words: []string{"dog"}, Exclude: []string{}})
	if !reflect.DeepEqual(shared.Blend[0], Blend{}) {
		t.Error("SetBlend wrote into a copy's entries")
	}
	// Dropping the second target keeps the third one's blend with it.
	s.DropTarget(1)
	if !reflect.DeepEqual(s.Targets, []string{"a dog", "a hen"}) || !reflect.DeepEqual(s.Blend, []Blend{{Words: []string{"dog"}}, {Words: []string{"hen"}}}) {
		t.Errorf("after DropTarget(1): targets %q, blend %+v", s.Targets, s.Blend)
	}
	s.DropTarget(1)
	s.SetBlend(0, Blend{})
	if s.Blend != nil || !reflect.DeepEqual(shared.Targets, []string{"a dog", "a cow", "a hen"}) {
		t.Errorf("blend %+v after clearing the last entry; copy's targets %q", s.Blend, shared.Targets)
	}
}

// TestBlendValidatesPerTarget: a target's blend words are looked up in the
// source and that target only: "grass" of the third target is not a word
// of the first.
func TestBlendValidatesPerTarget(t *testing.T) {
	s := Spec{Source: "a red circle", Targets: []string{"a blue circle", "a red square", "a red circle on grass"}, Seed: ptr(uint64(3)),
		Blend: []Blend{{}, {}, {Words: []string{"grass"}}}}
	if err := s.Validate(tinyDefaults("tiny")); err != nil {
		t.Fatal(err)
	}
	s.Blend = []Blend{{Words: []string{"grass"}}, {Words: []string{"circle"}, Exclude: []string{"red"}}}
	err := s.Validate(tinyDefaults("tiny"))
	if err == nil || !strings.Contains(err.Error(), `blend[0].words["grass"] does not occur in the source prompt or edit 1`) || strings.Contains(err.Error(), "blend[1]") {
		t.Errorf("err = %v; want only grass of edit 1 refused", err)
	}
}

// TestV1LinksOpen: a link an older build wrote (one blend list for every
// prompt) opens with each target blending the words that occur in the
// source or in it, with the norm window off and every token at cross 0.8
// as it ran, and re-encodes as a current link.
func TestV1LinksOpen(t *testing.T) {
	// Written by `reword link encode` of the build before per-target blends.
	const v1 = "v1.QgnFotQUheTMouScVPRATMopTUVIQVQWF5YmFiG4EFmQ0elFicXFSrGwsDWGB64hsmcgqnSUoKbG1gICAAD__xcJR4M"
	s, err := DecodeLink(v1)
	if err != nil {
		t.Fatal(err)
	}
	want := Spec{Source: "a red circle", Targets: []string{"a blue circle", "a red square", "a red circle on grass"}, Seed: ptr(uint64(3)), Steps: ptr(12),
		Blend: []Blend{{Words: []string{"circle"}}, {Words: []string{"circle"}}, {Words: []string{"grass", "circle"}}}, Norm: &Window{},
		Cross: ptr(Fraction(0.8)), CrossChanged: ptr(Fraction(0.8)), BlendChanged: ptr(false), DecodeNorm: DecodeNormOwn, BlendReweighted: ptr(false)}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("v1 link decoded to %+v\nwant %+v", s, want)
	}
	link, err := EncodeLink(s)
	if err != nil || !strings.HasPrefix(link, linkPrefix) {
		t.Fatalf("re-encoded as %q, %v", link, err)
	}
	// A word no prompt of a target has leaves that target unblended.
	s, err = DecodeLink(encodeRawV1(t, []byte(`{"source":"a cat","targets":["a dog","a cow on grass"],"blend":["grass"]}`)))
	if err != nil || !reflect.DeepEqual(s.Blend, []Blend{{}, {Words: []string{"grass"}}}) {
		t.Errorf("v1 blend of a word one target has: %+v, %v", s.Blend, err)
	}
	if _, err := DecodeLink(encodeRawV1(t, []byte(`{"source":"a","targets":["b"],"blend":[{"words":["a"]}]}`))); err == nil || !strings.Contains(err.Error(), "version 1") {
		t.Errorf("a v1 link with a v2 blend: err = %v", err)
	}
}

// TestCheckFieldsNeedsNoModel: the checks an editor runs before it knows
// the model are Validate's, less the model's.
func TestCheckFieldsNeedsNoModel(t *testing.T) {
	s := Spec{Source: "a cat", Targets: []string{"a dog"}, Seed: ptr(uint64(1)), Steps: ptr(1000), Scheduler: "euler", Guidance: ptr(-5.0)}
	got := map[string]string{}
	for _, p := range s.CheckFields() {
		got[p.Field] = p.Message
	}
	if got["steps"] != "must be 1–150 (it is 1000)" || got["guidance"] != "must be 0–30 (it is -5)" || len(got) != 2 {
		t.Errorf("CheckFields: %v", got)
	}
	err := s.Validate(tinyDefaults("tiny"))
	if err == nil || !strings.Contains(err.Error(), "invalid edit spec: steps must be 1–150 (it is 1000); guidance must be 0–30 (it is -5); scheduler must be one") {
		t.Errorf("Validate: %v", err)
	}
}

// TestBlendChangedResolves: blend_changed is the spec's, else the model's
// default; the resolved spec states it only where one of them does, so a
// spec on a model without the default echoes and links as before the
// field, and an explicit false survives the JSON form and a link.
func TestBlendChangedResolves(t *testing.T) {
	on, off := true, false
	withDefault := blendingDefaults()
	for _, c := range []struct {
		name  string
		spec  *bool
		d     Defaults
		want  *bool
		blend bool
	}{
		{"no default, omitted", nil, tinyDefaults("m"), nil, false},
		{"no default, on", &on, tinyDefaults("m"), &on, true},
		{"default, omitted", nil, withDefault, &on, true},
		{"default, off", &off, withDefault, &off, false},
	} {
		s := Spec{Source: "a red circle", Targets: []string{"a blue circle"}, Seed: ptr(uint64(1)), BlendChanged: c.spec}
		r, err := s.Resolve(c.d)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !reflect.DeepEqual(r.BlendChanged, c.want) || r.AlignConfig().BlendChanged != c.blend {
			t.Errorf("%s: resolved %v, align %v; want %v, %v", c.name, r.BlendChanged, r.AlignConfig().BlendChanged, c.want, c.blend)
		}
		echo := r.Spec()
		js, err := echo.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(string(js), `"blend_changed"`); got != (c.want != nil) {
			t.Errorf("%s: echo %s states blend_changed: %v", c.name, js, got)
		}
		if back := relinked(t, echo); !reflect.DeepEqual(back.BlendChanged, c.want) {
			t.Errorf("%s: the link brings back %v, want %v", c.name, back.BlendChanged, c.want)
		}
	}
	if _, err := ParseSpec([]byte(`{"source":"a","targets":["b"],"blend_changed":"yes"}`)); err == nil || !strings.Contains(err.Error(), "blend_changed") {
		t.Errorf("a string blend_changed: err %v, want one naming the field", err)
	}
}

// TestBlendChangedInOlderLinks: a link from before meaning version 5
// opens as it ran, where the tiny model now blends on the changed words
// and decodes swaps with the source's statistics by default: a spec for
// the tiny model, or for no model, that leaves blend_changed or
// decode_norm out states it off or "own", whichever version wrote it; one
// that states them keeps them; a spec for another model, whose defaults
// did not change, is as it was. A current link leaves them to the model.
func TestBlendChangedInOlderLinks(t *testing.T) {
	on, off := true, false
	tiny := blendingDefaults()
	tiny.Model, tiny.DecodeNorm = TinyModelID, DecodeNormSwaps
	other := blendingDefaults()
	other.Model = "sd15"
	const swap = `"source":"a red circle","targets":["a blue circle"],"seed":3`
	for _, c := range []struct {
		js     string
		d      Defaults
		field  *bool  // the decoded spec's blend_changed
		blend  bool   // whether the edit blends
		decode string // the decoded spec's decode_norm
	}{
		{`{` + swap + `}`, tiny, &off, false, DecodeNormOwn},
		{`{` + swap + `,"model":"reword-tiny"}`, tiny, &off, false, DecodeNormOwn},
		{`{` + swap + `,"blend_changed":true}`, tiny, &on, true, DecodeNormOwn},
		{`{` + swap + `,"model":"sd15"}`, other, nil, true, ""},
	} {
		links := map[string]string{"v4": encodeRawV4(t, []byte(c.js)), "v3": encodeRawV3(t, []byte(c.js))}
		if !strings.Contains(c.js, "blend_changed") {
			links["v2"], links["v1"] = encodeRawV2(t, []byte(c.js)), encodeRawV1(t, []byte(c.js))
		}
		for v, link := range links {
			s, r := openResolved(t, v+" link of "+c.js, link, c.d)
			if !reflect.DeepEqual(s.BlendChanged, c.field) || r.AlignConfig().BlendChanged != c.blend || s.DecodeNorm != c.decode {
				t.Errorf("%s link of %s: blend_changed %v, blends %v, decode_norm %q; want %v, %v, %q", v, c.js, s.BlendChanged,
					r.AlignConfig().BlendChanged, s.DecodeNorm, c.field, c.blend, c.decode)
			}
		}
	}
	link, err := EncodeLink(Spec{Source: "a red circle", Targets: []string{"a blue circle"}, Seed: ptr(uint64(3))})
	if err != nil || !strings.HasPrefix(link, "v6.") {
		t.Fatalf("EncodeLink: %q, %v; want a v6 link", link, err)
	}
	s, err := DecodeLink(link)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := s.Resolve(tiny); err != nil || s.BlendChanged != nil || !r.AlignConfig().BlendChanged || r.DecodeNorm != DecodeNormSwaps {
		t.Errorf("a v6 link without blend_changed or decode_norm: %v, %q, %v; want the model's defaults (on, swaps)", s.BlendChanged, r.DecodeNorm, err)
	}
}

// TestExcludeOnlyWithBlendChanged: an entry with excluded words alone
// narrows the blend on the changed words where blend_changed is on (the
// spec's or the model's), and is refused, naming blend_changed as the
// way out, where it is off: it would blend nothing.
func TestExcludeOnlyWithBlendChanged(t *testing.T) {
	on, off := true, false
	withDefault := blendingDefaults()
	for _, c := range []struct {
		name string
		spec *bool
		d    Defaults
		ok   bool
	}{
		{"spec on", &on, tinyDefaults("m"), true},
		{"model on", nil, withDefault, true},
		{"model on, spec off", &off, withDefault, false},
		{"off", nil, tinyDefaults("m"), false},
	} {
		s := Spec{Source: "a red circle", Targets: []string{"a blue circle"}, Seed: ptr(uint64(1)),
			Blend: []Blend{{Exclude: []string{"circle"}}}, BlendChanged: c.spec}
		err := s.Validate(c.d)
		if c.ok && err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
		if !c.ok && (err == nil || !strings.Contains(err.Error(), "blend[0].exclude") || !strings.Contains(err.Error(), "blend_changed")) {
			t.Errorf("%s: err %v; want blend[0].exclude refused, naming blend_changed", c.name, err)
		}
	}
}

// blendingDefaults are test defaults of a model that blends on the
// changed words by default.
func blendingDefaults() Defaults {
	d := tinyDefaults("m")
	d.BlendChanged = true
	return d
}

// TestTakesBlendChanged: blend_changed has a target to blend where one
// changes words (a swap, an addition, a refined swap) and names no blend
// words of its own; a pure reweight changes none.
func TestTakesBlendChanged(t *testing.T) {
	tok, err := clip.Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		targets []string
		blend   []Blend
		want    bool
	}{
		{[]string{"a blue circle"}, nil, true},
		{[]string{"a red circle on grass"}, nil, true},
		{[]string{"a red circle"}, nil, false},
		{[]string{"a blue circle"}, []Blend{{Words: []string{"circle"}}}, false},
		{[]string{"a blue circle", "a red square"}, []Blend{{Words: []string{"circle"}}}, true},
		{[]string{"a blue circle"}, []Blend{{Exclude: []string{"circle"}}}, true},
		{[]string{""}, nil, false},
	} {
		s := Spec{Source: "a red circle", Targets: c.targets, Blend: c.blend}
		if got := s.TakesBlendChanged(tok); got != c.want {
			t.Errorf("%q (blend %v): %v, want %v", c.targets, c.blend, got, c.want)
		}
	}
}
