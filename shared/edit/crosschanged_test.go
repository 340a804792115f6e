package edit

import (
	"reflect"
	"strings"
	"testing"

	"reword/shared/align"
	"reword/shared/clip"
)

// TestCrossChangedResolves: an omitted cross_changed takes the model's
// default, and for a model without one stays unset (every token takes
// cross, as before the field); a stated one wins; it reaches the
// alignment, and the resolved spec states it only when it was set, so
// that the resolved spec of an edit without one is what it was before.
func TestCrossChangedResolves(t *testing.T) {
	s, plain, withDefault := swapFixture()
	for _, c := range []struct {
		name   string
		spec   Spec
		d      Defaults
		cross  Window
		change *Window
	}{
		{"no default", s, plain, plain.Cross, nil},
		{"no default, cross stated", withCross(s, Fraction(0.6)), plain, Fraction(0.6), nil},
		{"the model's default", s, withDefault, Fraction(1), ptr(Fraction(0.4))},
		{"cross stated beside the default", withCross(s, Fraction(0.6)), withDefault, Fraction(0.6), ptr(Fraction(0.4))},
		{"stated", withChanged(s, Window{0.1, 0.3}), withDefault, Fraction(1), &Window{0.1, 0.3}},
		{"stated, no default", withChanged(s, Window{0.1, 0.3}), plain, plain.Cross, &Window{0.1, 0.3}},
	} {
		r, err := c.spec.Resolve(c.d)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if r.Cross != c.cross || !reflect.DeepEqual(r.CrossChanged, c.change) {
			t.Errorf("%s: cross %v, cross_changed %v; want %v and %v", c.name, r.Cross, r.CrossChanged, c.cross, c.change)
		}
		if got, want := r.AlignConfig().CrossChanged, (*align.Window)(c.change); !reflect.DeepEqual(got, want) {
			t.Errorf("%s: the alignment gets cross_changed %v; want %v", c.name, got, want)
		}
		back := r.Spec()
		if !reflect.DeepEqual(back.CrossChanged, c.change) {
			t.Errorf("%s: the resolved spec states cross_changed %v; want %v", c.name, back.CrossChanged, c.change)
		}
		if again, err := back.Resolve(c.d); err != nil || !reflect.DeepEqual(again, r) {
			t.Errorf("%s: the resolved spec resolves again to %+v, %v; want %+v", c.name, again, err, r)
		}
	}
	bad := withChanged(s, Window{0.5, 0.2})
	if err := bad.Validate(withDefault); err == nil || !strings.Contains(err.Error(), "cross_changed") {
		t.Errorf("a reversed cross_changed: %v; want a problem naming the field", err)
	}
}

// TestCrossChangedInLinks: a link carries cross_changed, and one without
// it leaves it to the model's default, which for a model without one is
// cross: what every link before the field ran.
func TestCrossChangedInLinks(t *testing.T) {
	s := Spec{Source: "a red circle", Targets: []string{"a blue circle"}, CrossChanged: ptr(Fraction(0.4))}
	link, err := EncodeLink(s)
	if err != nil {
		t.Fatal(err)
	}
	if back, err := DecodeLink(link); err != nil || !reflect.DeepEqual(back, s) {
		t.Errorf("round trip: %+v, %v; want %+v", back, err, s)
	}
	s.CrossChanged = nil
	if link, err = EncodeLink(s); err != nil {
		t.Fatal(err)
	}
	back, err := DecodeLink(link)
	if err != nil || back.CrossChanged != nil {
		t.Fatalf("a link without cross_changed decoded to %v, %v; want it left to the model's default", back.CrossChanged, err)
	}
	back.Seed = ptr(uint64(1))
	if r, err := back.Resolve(tinyDefaults("tiny")); err != nil || r.CrossChanged != nil {
		t.Errorf("resolved without a model default: cross_changed %v, %v; want none (cross for every token)", r.CrossChanged, err)
	}
}

// swapFixture is a one-word swap, and defaults without and with a model
// cross_changed (the tiny model's: cross 1, swapped words 0.4).
func swapFixture() (s Spec, plain, withDefault Defaults) {
	s = Spec{Source: "a red circle", Targets: []string{"a blue circle"}, Seed: ptr(uint64(1))}
	plain, withDefault = tinyDefaults("tiny"), tinyDefaults("tiny")
	withDefault.Cross, withDefault.CrossChanged = Fraction(1), ptr(Fraction(0.4))
	return s, plain, withDefault
}

func withCross(s Spec, w Window) Spec   { s = s.Clone(); s.Cross = &w; return s }
func withChanged(s Spec, w Window) Spec { s = s.Clone(); s.CrossChanged = &w; return s }

// TestSwappedWordsCross: the window shown for the swapped words is the
// one Resolve runs them with, in each case of TestCrossChangedResolves'
// order: the spec's, the model's, the spec's cross, the model's cross.
func TestSwappedWordsCross(t *testing.T) {
	s, plain, withDefault := swapFixture()
	for _, c := range []struct {
		spec Spec
		d    Defaults
		want Window
	}{
		{s, plain, plain.Cross},
		{withCross(s, Fraction(0.6)), plain, Fraction(0.6)},
		{withCross(s, Fraction(0.6)), withDefault, Fraction(0.4)},
		{withChanged(withCross(s, Fraction(0.6)), Window{0.1, 0.3}), withDefault, Window{0.1, 0.3}},
	} {
		r, err := c.spec.Resolve(c.d)
		if err != nil {
			t.Fatal(err)
		}
		ran := r.Cross
		if r.CrossChanged != nil {
			ran = *r.CrossChanged
		}
		if got := c.d.SwappedWordsCross(c.spec); got != c.want || got != ran {
			t.Errorf("%+v: shown %v, resolved %v; want %v", c.spec, got, ran, c.want)
		}
	}
}

// TestCrossChangedInOlderLinks: a link from before meaning version 4
// opens as it ran, where the tiny model now has cross windows of its own:
// its cross, 0.8 (the tiny model's then) where it states none and names
// the tiny model or no model, and its swapped words at that cross unless
// it gives them a window. A spec for another model, whose defaults did not
// change, runs under them as it did.
func TestCrossChangedInOlderLinks(t *testing.T) {
	tiny := tinyDefaults(TinyModelID)
	tiny.Cross, tiny.CrossChanged = Fraction(1), ptr(Fraction(0.4))
	other := tinyDefaults("sd15")
	other.Cross, other.CrossChanged = Fraction(0.7), ptr(Fraction(0.5))
	const swap = `"source":"a red circle","targets":["a blue circle"],"seed":3`
	for _, c := range []struct {
		js            string
		d             Defaults
		cross, change Window
	}{
		{`{` + swap + `}`, tiny, Fraction(0.8), Fraction(0.8)},
		{`{` + swap + `,"model":"reword-tiny"}`, tiny, Fraction(0.8), Fraction(0.8)},
		{`{` + swap + `,"cross":0.6}`, tiny, Fraction(0.6), Fraction(0.6)},
		{`{` + swap + `,"cross_changed":0.3}`, tiny, Fraction(0.8), Fraction(0.3)},
		{`{` + swap + `,"cross":0.6,"cross_changed":0.3}`, tiny, Fraction(0.6), Fraction(0.3)},
		{`{` + swap + `,"model":"sd15"}`, other, Fraction(0.7), Fraction(0.5)},
		{`{` + swap + `,"model":"sd15","cross":0.6}`, other, Fraction(0.6), Fraction(0.5)},
	} {
		for _, link := range []string{encodeRawV3(t, []byte(c.js)), encodeRawV2(t, []byte(c.js))} {
			if strings.Contains(c.js, "cross_changed") && strings.HasPrefix(link, "v2.") {
				continue // v2 had no such field
			}
			s, err := DecodeLink(link)
			if err != nil {
				t.Fatalf("%.3s link of %s: %v", link, c.js, err)
			}
			r, err := s.Resolve(c.d)
			if err != nil {
				t.Fatalf("%.3s link of %s: %v", link, c.js, err)
			}
			change := r.Cross
			if r.CrossChanged != nil {
				change = *r.CrossChanged
			}
			if r.Cross != c.cross || change != c.change {
				t.Errorf("%.3s link of %s: cross %v, swapped words %v; want %v and %v", link, c.js, r.Cross, change, c.cross, c.change)
			}
		}
	}
	// The current version leaves both to the model's defaults.
	link, err := EncodeLink(Spec{Source: "a red circle", Targets: []string{"a blue circle"}, Seed: ptr(uint64(3))})
	if err != nil {
		t.Fatal(err)
	}
	s, err := DecodeLink(link)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := s.Resolve(tiny); err != nil || r.Cross != Fraction(1) || r.CrossChanged == nil || *r.CrossChanged != Fraction(0.4) {
		t.Errorf("a v6 link without windows: %+v, %v; want the model's cross 1 and swapped words 0.4", r, err)
	}
}

// TestSwapsWords: cross_changed has tokens to apply to only where a target
// is a word swap that changes a word.
func TestSwapsWords(t *testing.T) {
	tok, err := clip.Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		targets []string
		kinds   []align.Choice
		want    bool
	}{
		{[]string{"a blue circle"}, nil, true},
		{[]string{"a red circle on grass"}, nil, false},
		{[]string{"a red circle"}, nil, false}, // a reweight: the same words
		{[]string{"a red circle on grass", "a red square"}, nil, true},
		{[]string{"a blue circle"}, []align.Choice{align.ForceRefine}, false},
		{[]string{""}, nil, false},
	} {
		s := Spec{Source: "a red circle", Targets: c.targets, Kinds: c.kinds}
		if got := s.SwapsWords(tok); got != c.want {
			t.Errorf("%q (kinds %v): %v, want %v", c.targets, c.kinds, got, c.want)
		}
	}
}
