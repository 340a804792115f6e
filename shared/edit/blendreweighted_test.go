package edit

import (
	"reflect"
	"strings"
	"testing"

	"reword/shared/clip"
)

// TestBlendReweightedResolves: blend_reweighted resolves as blend_changed
// does (the spec's, else on where the model blends its reweights by
// default, else left out), reaches the alignment's config, and travels in
// the echoed spec and its link; a model default for blend_changed is not
// one for it. A clone does not share it.
func TestBlendReweightedResolves(t *testing.T) {
	on, off := true, false
	withDefault := tinyDefaults("m")
	withDefault.BlendReweighted = true
	for _, c := range []struct {
		name  string
		spec  *bool
		d     Defaults
		want  *bool
		blend bool
	}{
		{"no default, omitted", nil, blendingDefaults(), nil, false},
		{"no default, on", &on, tinyDefaults("m"), &on, true},
		{"default, omitted", nil, withDefault, &on, true},
		{"default, off", &off, withDefault, &off, false},
	} {
		s := Spec{Source: "a red circle", Targets: []string{"a red circle"}, Reweights: map[string]float64{"red": -1},
			Seed: ptr(uint64(1)), BlendReweighted: c.spec}
		r, err := s.Resolve(c.d)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if !reflect.DeepEqual(r.BlendReweighted, c.want) || r.AlignConfig().BlendReweighted != c.blend {
			t.Errorf("%s: resolved %v, align %v; want %v, %v", c.name, r.BlendReweighted, r.AlignConfig().BlendReweighted, c.want, c.blend)
		}
		if back := relinked(t, r.Spec()); !reflect.DeepEqual(back.BlendReweighted, c.want) {
			t.Errorf("%s: the link brings back %v, want %v", c.name, back.BlendReweighted, c.want)
		}
	}
	s := Spec{BlendReweighted: &on}
	if c := s.Clone(); c.BlendReweighted == s.BlendReweighted {
		t.Error("a clone shares blend_reweighted with its original")
	}
	if _, err := ParseSpec([]byte(`{"source":"a","targets":["a"],"blend_reweighted":1}`)); err == nil || !strings.Contains(err.Error(), "blend_reweighted") {
		t.Errorf("a number blend_reweighted: err %v, want one naming the field", err)
	}
}

// TestExcludeOnlyWithBlendReweighted: a blend entry of excluded words
// alone narrows the blend blend_reweighted gives a reweight, so it is
// valid with it on and refused, naming both ways to blend, with neither.
func TestExcludeOnlyWithBlendReweighted(t *testing.T) {
	on, off := true, false
	for _, c := range []struct {
		spec *bool
		ok   bool
	}{{&on, true}, {nil, false}} {
		s := Spec{Source: "a red circle on grass", Targets: []string{"a red circle on grass"}, Reweights: map[string]float64{"red": 2},
			Seed: ptr(uint64(1)), Blend: []Blend{{Exclude: []string{"grass"}}}, BlendReweighted: c.spec}
		err := s.Validate(tinyDefaults("m"))
		if c.ok && err != nil {
			t.Errorf("blend_reweighted %v: %v", c.spec, err)
		}
		if !c.ok && (err == nil || !strings.Contains(err.Error(), "blend[0].exclude") || !strings.Contains(err.Error(), "blend_reweighted")) {
			t.Errorf("blend_reweighted %v: err %v; want blend[0].exclude refused, naming blend_reweighted", c.spec, err)
		}
	}
	// A word swap is no reweight: with blend_changed off, blend_reweighted
	// gives it no blend for excluded words to narrow, and it is refused.
	s := Spec{Source: "a red circle on grass", Targets: []string{"a blue circle on grass"}, Seed: ptr(uint64(1)),
		Blend: []Blend{{Exclude: []string{"grass"}}}, BlendReweighted: &on, BlendChanged: &off}
	if err := s.Validate(tinyDefaults("m")); err == nil || !strings.Contains(err.Error(), "blend[0].exclude") {
		t.Errorf("excluded words alone on a word swap with only blend_reweighted on: %v; want blend[0].exclude refused", err)
	}
}

// TestTakesBlendReweighted: blend_reweighted has a target to blend where
// one is a pure reweight without blend words of its own and some word is
// reweighted by a factor other than 1.
func TestTakesBlendReweighted(t *testing.T) {
	tok, err := clip.Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		targets   []string
		reweights map[string]float64
		blend     []Blend
		want      bool
	}{
		{[]string{"a red circle"}, map[string]float64{"red": -1}, nil, true},
		{[]string{"a red circle"}, map[string]float64{"red": 1}, nil, false},
		{[]string{"a red circle"}, nil, nil, false},
		{[]string{"a blue circle"}, map[string]float64{"blue": 2}, nil, false},
		{[]string{"a red circle"}, map[string]float64{"red": 2}, []Blend{{Words: []string{"circle"}}}, false},
		{[]string{"a blue circle", "a red circle"}, map[string]float64{"red": 2}, nil, true},
		// The reweighted word is the swap's, not the pure reweight's.
		{[]string{"a blue circle", "a red circle"}, map[string]float64{"blue": 2}, nil, false},
	} {
		s := Spec{Source: "a red circle", Targets: c.targets, Reweights: c.reweights, Blend: c.blend}
		if got := s.TakesBlendReweighted(tok); got != c.want {
			t.Errorf("%q, reweights %v, blend %v: %v, want %v", c.targets, c.reweights, c.blend, got, c.want)
		}
	}
}

// TestBlendReweightedInOlderLinks: a link from before meaning version 6
// opens as it ran, where the tiny model now blends its reweights by
// default: a spec for the tiny model, or for no model, that leaves
// blend_reweighted out states it off, whichever version wrote it; one
// that states it keeps it; a spec for another model is as it was. A
// current link leaves it to the model.
func TestBlendReweightedInOlderLinks(t *testing.T) {
	on, off := true, false
	tiny := tinyDefaults(TinyModelID)
	tiny.BlendReweighted = true
	other := tinyDefaults("sd15")
	other.BlendReweighted = true
	const reweight = `"source":"a red circle","targets":["a red circle"],"reweights":{"red":-1},"seed":3`
	for _, c := range []struct {
		js    string
		d     Defaults
		field *bool
		blend bool
	}{
		{`{` + reweight + `}`, tiny, &off, false},
		{`{` + reweight + `,"model":"reword-tiny"}`, tiny, &off, false},
		{`{` + reweight + `,"blend_reweighted":true}`, tiny, &on, true},
		{`{` + reweight + `,"model":"sd15"}`, other, nil, true},
	} {
		links := map[string]string{"v5": encodeRawV5(t, []byte(c.js)), "v4": encodeRawV4(t, []byte(c.js)), "v3": encodeRawV3(t, []byte(c.js))}
		if !strings.Contains(c.js, "blend_reweighted") {
			links["v2"] = encodeRawV2(t, []byte(c.js))
		}
		for v, link := range links {
			s, r := openResolved(t, v+" link of "+c.js, link, c.d)
			if !reflect.DeepEqual(s.BlendReweighted, c.field) || r.AlignConfig().BlendReweighted != c.blend {
				t.Errorf("%s link of %s: blend_reweighted %v, blends %v; want %v, %v", v, c.js, s.BlendReweighted,
					r.AlignConfig().BlendReweighted, c.field, c.blend)
			}
		}
	}
	s, err := DecodeLink(encodeRaw(t, []byte(`{`+reweight+`}`)))
	if err != nil {
		t.Fatal(err)
	}
	if r, err := s.Resolve(tiny); err != nil || s.BlendReweighted != nil || !r.AlignConfig().BlendReweighted {
		t.Errorf("a v6 link without blend_reweighted: %v, %v; want the model's default (on)", s.BlendReweighted, err)
	}
}
