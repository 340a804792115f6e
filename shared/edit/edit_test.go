package edit

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"reword/shared/align"
	"reword/shared/clip"
)

func ptr[T any](v T) *T { return &v }

// squirrel is the P2P paper's first example (the painting of a squirrel
// eating a burger, which becomes a lion) as a spec.
func squirrel() Spec {
	return Spec{
		Source:    "A painting of a squirrel eating a burger",
		Targets:   []string{"A painting of a lion eating a burger"},
		Seed:      ptr(uint64(8888)),
		Cross:     ptr(Fraction(0.8)),
		Self:      ptr(Fraction(0.4)),
		Reweights: map[string]float64{"lion": 2, "burger": 0.5},
	}
}

func TestJSONFieldNames(t *testing.T) {
	s := Spec{
		Source: "a cat", Targets: []string{"a dog"}, Negative: "blurry", Seed: ptr(uint64(1)),
		Steps: ptr(30), Guidance: ptr(5.0), Width: ptr(64), Height: ptr(64), Scheduler: "ddim", Model: "tiny",
		Cross: ptr(Window{0.1, 0.9}), CrossWords: map[string]Window{"dog": Fraction(0.4)}, Self: ptr(Fraction(0.4)),
		Reweights: map[string]float64{"dog": 2}, Blend: []Blend{{Words: []string{"cat", "dog"}, Exclude: []string{"a"}}},
		Image: strings.Repeat("ab", 32), Inversion: "npi",
	}
	js, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"source":"a cat","targets":["a dog"],"negative":"blurry","seed":1,"steps":30,"guidance":5,` +
		`"width":64,"height":64,"scheduler":"ddim","model":"tiny","cross":[0.1,0.9],"cross_words":{"dog":0.4},` +
		`"self":0.4,"reweights":{"dog":2},"blend":[{"words":["cat","dog"],"exclude":["a"]}],"image":"` + strings.Repeat("ab", 32) + `","inversion":"npi"}`
	if string(js) != want {
		t.Errorf("JSON form:\n got  %s\n want %s", js, want)
	}
	back, err := ParseSpec(js)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, s) {
		t.Errorf("decoded %+v, want %+v", back, s)
	}
}

func TestParseSpecIsStrict(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`{"source":"a","targets":["b"],"sead":1}`, `unknown field "sead"`},
		{`{"source":"a","targets":["b"]} {}`, "unexpected data after"},
		{`{"source":"a","targets":["b"],"cross":[0.1]}`, "want a fraction like 0.8 or a pair"},
		{`{"source":"a","targets":["b"],"cross":"0.8"}`, "want a fraction like 0.8 or a pair"},
		{`{"source":"a","targets":["b"],"cross_words":{"b":null}}`, "window null"},
		{`{"source":"a","targets":["b"],"seed":-1}`, "seed"},
		{`{"source":"a","targets":"b"}`, "targets"},
		{`{"source":"` + strings.Repeat("a", MaxSpecBytes) + `"}`, "the limit is"},
	} {
		_, err := ParseSpec([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseSpec(%.60s): err = %v, want it to mention %q", c.in, err, c.want)
		}
	}
	s, err := ParseSpec([]byte(`{"source":"a","targets":["b"],"cross":0.5,"self":[0.1,0.3],"reweights":{}}`))
	if err != nil {
		t.Fatal(err)
	}
	if *s.Cross != (Window{0, 0.5}) || *s.Self != (Window{0.1, 0.3}) || s.Reweights != nil {
		t.Errorf("parsed %+v", s)
	}
}

func TestValidateReferenceExamples(t *testing.T) {
	d := sd1Defaults("sd15")
	for _, s := range []Spec{
		squirrel(),
		{Source: "A painting of a squirrel eating a burger", Targets: []string{"A painting of a lion eating a burger"}, Seed: ptr(uint64(8888)),
			Cross: ptr(Fraction(1)), CrossWords: map[string]Window{"lion": Fraction(0.4)}, Blend: []Blend{{Words: []string{"squirrel", "lion"}}}},
		{Source: "a photo of a house on a mountain", Targets: []string{"a photo of a house on a mountain at fall", "a photo of a house on a mountain at winter"}, Seed: ptr(uint64(1))},
		{Source: "soup", Targets: []string{"pea soup with croutons"}, Seed: ptr(uint64(1)), Blend: []Blend{{Words: []string{"soup"}}}, Reweights: map[string]float64{"croutons": 3}},
		{Source: "pink bear riding a bicycle", Targets: []string{"pink bear riding a bicycle"}, Seed: ptr(uint64(1)), Reweights: map[string]float64{"pink": -1}, Blend: []Blend{{Words: []string{"bicycle"}}}},
		{Source: "a cat sitting next to a mirror", Targets: []string{"a tiger sitting next to a mirror"}, Seed: ptr(uint64(0)),
			Image: strings.Repeat("0", 64), Inversion: InversionDirect, Self: ptr(Fraction(0.5)), Reweights: map[string]float64{"tiger": 2}, Blend: []Blend{{Words: []string{"cat", "tiger"}}}},
	} {
		if err := s.Validate(d); err != nil {
			t.Errorf("%q → %q: %v", s.Source, s.Targets, err)
		}
	}
}

// TestValidateReportsEveryProblem: each invalid field has its problem.
// The fields are spread over two specs, each with fewer problems than
// Problems lists (MaxProblems).
func TestValidateReportsEveryProblem(t *testing.T) {
	settings := Spec{
		Source:    " ",
		Targets:   []string{"a dog", "", "x", "y", "z"},
		Steps:     ptr(0),
		Guidance:  ptr(31.0),
		Width:     ptr(100),
		Scheduler: "euler",
		Model:     "sd15",
		Cross:     ptr(Window{0.6, 0.2}),
		Self:      ptr(Fraction(1.5)),
		Norm:      ptr(Window{0.5, 1.2}),
		Reweights: map[string]float64{"dog": 11},
		Image:     "not-a-hash",
		Inversion: "nulltext",
	}
	words := Spec{
		Source:     "a cat",
		Targets:    []string{"a dog", "a cow", "x", "y"},
		Seed:       ptr(uint64(1)),
		CrossWords: map[string]Window{"cat": Fraction(0.5)},
		Reweights:  map[string]float64{"": 1},
		Blend:      []Blend{{Words: []string{"dog", "dog", "horse"}}, {Exclude: []string{"dog"}}, {}, {Words: []string{"x", "a"}, Exclude: []string{"x"}}, {Words: []string{"z"}}},
	}
	got := map[string]string{}
	for _, s := range []Spec{settings, words} {
		err := s.Validate(tinyDefaults("tiny"))
		var p Problems
		if !errors.As(err, &p) {
			t.Fatalf("err = %v, want Problems", err)
		}
		if len(p) >= MaxProblems {
			t.Fatalf("%d problems: the spec must have fewer than MaxProblems to show them all", len(p))
		}
		for _, pr := range p {
			got[pr.Field] += pr.Message + " | "
		}
	}
	for field, want := range map[string]string{
		"source":                  "is empty",
		"targets":                 "must be 1 to 4 prompts (there are 5)",
		"targets[1]":              "is empty",
		"seed":                    "is missing: give a whole number from 0 to",
		"steps":                   "must be 1–150 (it is 0)",
		"guidance":                "must be 0–30 (it is 31)",
		"width":                   `gives the size 100x64, which model "tiny" does not make; it makes 64x64`,
		"scheduler":               `must be one model "tiny" runs: ddim (it is "euler")`,
		"model":                   `must be "tiny", the model these settings are for (it is "sd15")`,
		"cross":                   "start before end (it is [0.6, 0.2])",
		"self":                    "must be a fraction of the steps from 0 to 1 (it is 1.5)",
		"norm":                    "must be a part of the steps inside 0–1, start before end (it is [0.5, 1.2])",
		`cross_words["cat"]`:      "does not occur in any edited prompt",
		`reweights["dog"]`:        "must be a factor from -10 to 10 (it is 11",
		`reweights[""]`:           "is an empty word",
		"blend":                   "has 5 entries for 4 edited prompts",
		`blend[0].words["dog"]`:   "is listed twice",
		`blend[0].words["horse"]`: "does not occur in the source prompt or edit 1",
		"blend[1].exclude":        "needs blend words",
		`blend[1].exclude["dog"]`: "does not occur in the source prompt or edit 2",
		`blend[3].words["x"]`:     "does not occur in the source prompt or edit 4",
		`blend[3].exclude["x"]`:   "is both a blend word and an excluded word of edit 4",
		"image":                   "64 lowercase hex digits",
		"inversion":               `must be one of direct, npi, ddim (it is "nulltext")`,
	} {
		if !strings.Contains(got[field], want) {
			t.Errorf("%s: problems %q, want one mentioning %q", field, got[field], want)
		}
	}
	s := Spec{Source: "a", Targets: []string{"a"}, Seed: ptr(uint64(1)), Inversion: InversionNPI}
	if err := s.Validate(tinyDefaults("tiny")); err == nil || !strings.Contains(err.Error(), "inversion is set but there is no photo") {
		t.Errorf("inversion without image: err = %v", err)
	}
}

func TestValidateWordsPastTheContext(t *testing.T) {
	long := strings.Repeat("cat ", 80) + "dog"
	s := Spec{Source: long, Targets: []string{long}, Seed: ptr(uint64(1)), Reweights: map[string]float64{"dog": 2, "cat": 2}}
	err := s.Validate(tinyDefaults("tiny"))
	if err == nil || !strings.Contains(err.Error(), `reweights["dog"] occurs only past the 77-token limit`) || strings.Contains(err.Error(), `"cat"`) {
		t.Errorf("err = %v", err)
	}
}

func TestResolveFillsDefaults(t *testing.T) {
	s := squirrel()
	r, err := s.Resolve(sd1Defaults("sd15"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Steps != 50 || r.Guidance != 7.5 || r.Width != 512 || r.Height != 512 || r.Scheduler != "ddim" || r.Model != "sd15" ||
		r.Cross != Fraction(0.8) || r.Self != Fraction(0.4) || r.Seed != 8888 || r.Inversion != "" {
		t.Errorf("resolved %+v", r)
	}
	s.Image, s.Guidance = strings.Repeat("f", 64), ptr(0.0)
	if r, err = s.Resolve(tinyDefaults("tiny")); err != nil || r.Inversion != InversionDirect || r.Guidance != 0 || r.Width != 64 {
		t.Errorf("resolved %+v, %v", r, err)
	}
	if _, err := s.Resolve(Defaults{Model: "x"}); err == nil || errors.As(err, new(Problems)) {
		t.Errorf("incomplete defaults: err = %v, want a plain error", err)
	}
}

func TestLinkRoundTrip(t *testing.T) {
	specs := []Spec{
		squirrel(),
		{Source: "a", Targets: []string{"b"}},
		{Source: "ünïcödé “quotes” 🎨", Targets: []string{"x", "y", "z", "w"}, Negative: "n", Seed: ptr(uint64(1<<64 - 1)),
			Steps: ptr(150), Guidance: ptr(0.1 + 0.2), Width: ptr(64), Height: ptr(64), Scheduler: "ddim", Model: "tiny",
			Cross: ptr(Window{0.25, 1}), CrossWords: map[string]Window{"y": {0.1, 0.3}, "x": Fraction(1)}, Self: ptr(Fraction(0)),
			Reweights: map[string]float64{"x": -10, "z": 1e-9}, Blend: []Blend{{}, {Words: []string{"y", "a"}, Exclude: []string{"x"}}}, Image: strings.Repeat("a", 64), Inversion: "ddim"},
	}
	for _, s := range specs {
		link, err := EncodeLink(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, form := range []string{link, "#" + link, "https://reword.example/edit#" + link} {
			back, err := DecodeLink(form)
			if err != nil {
				t.Fatalf("DecodeLink(%s): %v", form, err)
			}
			if !reflect.DeepEqual(back, s) {
				t.Errorf("round trip:\n got  %+v\n want %+v", back, s)
			}
		}
	}
	link, _ := EncodeLink(squirrel())
	t.Logf("two-prompt edit with two reweights: %d characters: %s", len(link), link)
	if len(link) >= 400 {
		t.Errorf("typical link is %d characters, want < 400", len(link))
	}
}

func TestLinkRejectsTampering(t *testing.T) {
	link, err := EncodeLink(squirrel())
	if err != nil {
		t.Fatal(err)
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := len(linkPrefix); i < len(link); i++ {
		for _, c := range []byte{alphabet[(strings.IndexByte(alphabet, link[i])+1)%64], alphabet[(strings.IndexByte(alphabet, link[i])+37)%64]} {
			bad := link[:i] + string(c) + link[i+1:]
			if _, err := DecodeLink(bad); err == nil || !strings.Contains(err.Error(), "damaged") {
				t.Fatalf("changing character %d to %c: err = %v, want a damaged-link error", i, c, err)
			}
		}
	}
	for _, c := range []struct{ in, want string }{
		{link[:len(link)-3], "damaged"},
		{link + "A", "damaged"},
		{"v7.AAAA", "format version 7"},
		{"v5.AAAA", "damaged"},
		{"v4.AAAA", "damaged"},
		{"v3.AAAA", "damaged"},
		{"v2.AAAA", "damaged"},
		{"v1.AAAA", "damaged"},
		{"hello", "not an edit link"},
		{"v1.", "too short"},
		{"v1.*&^", "not base64url"},
		{"v1." + strings.Repeat("A", MaxLinkBytes), "the limit is 4096"},
	} {
		if _, err := DecodeLink(c.in); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("DecodeLink(%.40s): err = %v, want it to mention %q", c.in, err, c.want)
		}
	}
}

func TestLinkRefusesDecompressionBombs(t *testing.T) {
	// A valid link whose JSON would exceed MaxSpecBytes: built by hand since
	// EncodeLink refuses it.
	s := Spec{Source: strings.Repeat("a", MaxSpecBytes), Targets: []string{"b"}}
	if _, err := EncodeLink(s); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("EncodeLink of an oversized spec: err = %v", err)
	}
	bomb := encodeRaw(t, []byte(`{"source":"`+strings.Repeat("a", 1<<20)+`"}`))
	if len(bomb) > MaxLinkBytes {
		t.Fatalf("test bomb is %d characters", len(bomb))
	}
	if _, err := DecodeLink(bomb); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("decompression bomb: err = %v", err)
	}
}

func TestWindowJSON(t *testing.T) {
	for in, want := range map[string]Window{"0.8": {0, 0.8}, "[0.2, 0.6]": {0.2, 0.6}, "1": {0, 1}, "[0,0.5]": {0, 0.5}} {
		var w Window
		if err := json.Unmarshal([]byte(in), &w); err != nil || w != want {
			t.Errorf("%s → %+v, %v; want %+v", in, w, err, want)
		}
	}
	for w, want := range map[Window]string{{0, 0.8}: "0.8", {0.2, 0.6}: "[0.2,0.6]"} {
		if b, _ := json.Marshal(w); string(b) != want {
			t.Errorf("%+v → %s, want %s", w, b, want)
		}
	}
	if !slices.Equal(Inversions, []string{"direct", "npi", "ddim"}) {
		t.Errorf("inversions %v", Inversions)
	}
}

func TestResolvedAlignsWithTheRealTokenizer(t *testing.T) {
	s := squirrel()
	s.CrossWords = map[string]Window{"lion": Fraction(0.4)}
	s.Blend = []Blend{{Words: []string{"squirrel", "lion"}}}
	s.Norm = &Window{0.1, 0.3}
	r, err := s.Resolve(sd1Defaults("sd15"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := clip.Default()
	if err != nil {
		t.Fatal(err)
	}
	ctrl, err := align.New(tok, r.AlignConfig())
	if err != nil {
		t.Fatal(err)
	}
	if ctrl.Targets() != 1 || ctrl.Steps() != 50 || ctrl.Kind(0) != align.Replace || len(ctrl.BlendMasks()) != 1 {
		t.Errorf("controller: %d targets, %d steps, kind %v, %d blend masks", ctrl.Targets(), ctrl.Steps(), ctrl.Kind(0), len(ctrl.BlendMasks()))
	}
	w, c, self, norm := make([]float32, 77*77), make([]float32, 77), make([]float32, 1), make([]float32, 1)
	if err := ctrl.Step(0, w, c, self, norm); err != nil {
		t.Fatal(err)
	}
	// lion ×2 inside the window; lion is token 5.
	if w[5*77+5] != 2 || self[0] != 1 || norm[0] != 0 {
		t.Errorf("step 0: W[lion,lion] = %v, self = %v, norm = %v; want 2, 1 and 0", w[5*77+5], self[0], norm[0])
	}
	// The norm window [0.1, 0.3) of 50 steps is steps 5 to 14.
	for i, want := range map[int]float32{4: 0, 5: 1, 14: 1, 15: 0} {
		if err := ctrl.Step(i, w, c, self, norm); err != nil {
			t.Fatal(err)
		}
		if norm[0] != want {
			t.Errorf("step %d: norm weight %v, want %v", i, norm[0], want)
		}
	}
}

// TestWithoutStrayWordsLeavesWhatValidates: the editor drops exactly the
// word settings Validate refuses as not occurring where they apply, and
// keeps the rest.
func TestWithoutStrayWordsLeavesWhatValidates(t *testing.T) {
	tok, err := clip.Default()
	if err != nil {
		t.Fatal(err)
	}
	s := squirrel()
	s.Reweights = map[string]float64{"lion": 2, "squirrel": 2, "tiger": 3}
	s.CrossWords = map[string]Window{"burger": Fraction(0.5), "cat": Fraction(0.5)}
	s.Targets = append(s.Targets, "A painting of a squirrel eating a pizza")
	s.Blend = []Blend{{Words: []string{"squirrel", "lion", "zebra", "pizza"}, Exclude: []string{"zebra", "burger"}}, {Words: []string{"lion"}, Exclude: []string{"burger"}}, {Words: []string{"squirrel"}}}
	if err := s.Validate(tinyDefaults("tiny")); err == nil {
		t.Fatal("the spec with stray words validates")
	}
	out := s.WithoutStrayWords(tok)
	if err := out.Validate(tinyDefaults("tiny")); err != nil {
		t.Fatalf("without stray words: %v", err)
	}
	// The second target has "squirrel", which a reweight may name; the
	// third blend entry has no target.
	if !reflect.DeepEqual(out.Reweights, map[string]float64{"lion": 2, "squirrel": 2}) ||
		!reflect.DeepEqual(out.CrossWords, map[string]Window{"burger": Fraction(0.5)}) ||
		!reflect.DeepEqual(out.Blend, []Blend{{Words: []string{"squirrel", "lion"}, Exclude: []string{"burger"}}}) {
		t.Errorf("kept reweights %v, cross words %v, blend %v", out.Reweights, out.CrossWords, out.Blend)
	}
	if len(s.Reweights) != 3 || len(s.CrossWords) != 2 || len(s.Blend) != 3 || len(s.Blend[0].Words) != 4 {
		t.Error("WithoutStrayWords changed the spec it was given")
	}
}
