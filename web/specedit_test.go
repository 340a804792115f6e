package web

import (
	"reflect"
	"testing"

	"reword/shared/edit"
)

func TestWordSettingsRoundTrip(t *testing.T) {
	s := edit.Spec{Source: "a red circle", Targets: []string{"a blue circle", "a blue square"}}
	win := edit.Window{Start: 0.1, End: 0.5}
	setWordSettings(&s, "blue", WordSettings{Reweight: 1.5, Cross: &win, Blend: []blendRole{blendNone, blendWords}})
	got := wordSettings(s, "blue")
	if got.Reweight != 1.5 || got.Cross == nil || *got.Cross != win || !reflect.DeepEqual(got.Blend, []blendRole{blendNone, blendWords}) {
		t.Fatalf("settings did not round-trip: %+v", got)
	}
	// Blend words belong to their edit: the first edit has none.
	if !reflect.DeepEqual(s.Blend, []edit.Blend{{}, {Words: []string{"blue"}}}) {
		t.Errorf("spec blend %+v", s.Blend)
	}
	setWordSettings(&s, "circle", WordSettings{Reweight: 1, Blend: []blendRole{blendExclude, blendNone}})
	if other := wordSettings(s, "circle"); other.Reweight != 1 || other.Cross != nil || other.Blend[0] != blendExclude {
		t.Errorf("circle: %+v", other)
	}
	setWordSettings(&s, "blue", WordSettings{Reweight: 1, Blend: []blendRole{blendNone, blendNone}})
	setWordSettings(&s, "circle", WordSettings{Reweight: 1, Blend: []blendRole{blendNone, blendNone}})
	if s.Reweights != nil || s.CrossWords != nil || s.Blend != nil {
		t.Errorf("neutral settings left traces in the spec: %+v", s)
	}
}

func TestRunnableDropsWordsThatNoLongerOccur(t *testing.T) {
	tok := tokenizer(t)
	s := edit.Spec{
		Source:     "a red circle",
		Targets:    []string{"a blue square"},
		Reweights:  map[string]float64{"blue": 2, "circle": 0.5},
		CrossWords: map[string]edit.Window{"green": {End: 0.3}},
		Blend:      []edit.Blend{{Words: []string{"circle", "square", "triangle"}}},
	}
	before := cloneSpec(s)
	got := runnable(tok, s)
	want := edit.Spec{
		Source:    "a red circle",
		Targets:   []string{"a blue square"},
		Reweights: map[string]float64{"blue": 2},
		Blend:     []edit.Blend{{Words: []string{"circle", "square"}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("runnable:\n got %+v\nwant %+v", got, want)
	}
	if !reflect.DeepEqual(s, before) {
		t.Error("runnable changed the editor's spec")
	}
	// The result must pass the server's validation of words.
	seed := uint64(1)
	got.Seed = &seed
	tiny := edit.Defaults{Model: "tiny", Sizes: []edit.Size{{Width: 64, Height: 64}}, Schedulers: []string{"ddim"}, Steps: 50, Guidance: 7.5}
	if err := got.Validate(tiny); err != nil {
		t.Errorf("runnable spec does not validate: %v", err)
	}
}

func TestCloneSpecIsDeep(t *testing.T) {
	seed, steps, g := uint64(3), 20, 5.0
	s := edit.Spec{Targets: []string{"x"}, Seed: &seed, Steps: &steps, Guidance: &g, Reweights: map[string]float64{"x": 2}}
	c := cloneSpec(s)
	*c.Seed, *c.Steps, *c.Guidance = 4, 21, 6
	c.Targets[0] = "y"
	c.Reweights["x"] = 3
	if *s.Seed != 3 || *s.Steps != 20 || *s.Guidance != 5 || s.Targets[0] != "x" || s.Reweights["x"] != 2 {
		t.Errorf("editing the clone changed the original: %+v", s)
	}
}
