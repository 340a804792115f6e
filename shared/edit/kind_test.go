package edit

import (
	"reflect"
	"strings"
	"testing"

	"reword/shared/align"
	"reword/shared/clip"
)

// TestKindsJSON: kinds are one name per target with trailing autos left
// out, the aligned replace tail is left out, and both survive SetKind and
// DropTarget with the other targets keeping theirs.
func TestKindsJSON(t *testing.T) {
	s := Spec{Source: "a big cat", Targets: []string{"a cat sleeping", "a big dog", "a cat"},
		Kinds: []align.Choice{align.ForceRefine, "", align.Auto}, ReplaceTail: ReplaceTailAligned}
	js, err := s.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"source":"a big cat","targets":["a cat sleeping","a big dog","a cat"],"kinds":["refine"]}`; string(js) != want {
		t.Errorf("JSON %s, want %s", js, want)
	}
	back, err := ParseSpec([]byte(`{"source":"a","targets":["b","c"],"kinds":["","replace"],"replace_tail":"reference"}`))
	if err != nil || !reflect.DeepEqual(back.Kinds, []align.Choice{align.Auto, align.ForceReplace}) || back.ReplaceTail != ReplaceTailReference {
		t.Errorf("parsed %+v, %v", back, err)
	}

	shared := []align.Choice{align.ForceRefine, align.ForceReplace}
	s = Spec{Targets: []string{"a", "b", "c"}, Kinds: shared}
	s.SetKind(2, align.ForceRefine)
	s.SetKind(0, align.Auto)
	if !reflect.DeepEqual(s.Kinds, []align.Choice{align.Auto, align.ForceReplace, align.ForceRefine}) || shared[0] != align.ForceRefine {
		t.Errorf("after SetKind: %q (the shared list became %q)", s.Kinds, shared)
	}
	s.DropTarget(1)
	if !reflect.DeepEqual(s.Kinds, []align.Choice{align.Auto, align.ForceRefine}) || s.KindOf(1) != align.ForceRefine || s.KindOf(5) != align.Auto {
		t.Errorf("after DropTarget(1): %q", s.Kinds)
	}
	s.SetKind(1, align.Auto)
	if s.Kinds != nil {
		t.Errorf("all auto: kinds %q, want none", s.Kinds)
	}
}

// TestKindsValidate: unknown kinds and replace tails name what is allowed;
// a replace across different word counts says both counts; too many kinds
// are refused; CheckFields reports the same without a model.
func TestKindsValidate(t *testing.T) {
	s := Spec{Source: "a circle", Targets: []string{"a big red circle", "a square"}, Seed: ptr(uint64(1)),
		Kinds: []align.Choice{align.ForceReplace, "swap", align.ForceRefine}, ReplaceTail: "published"}
	err := s.Validate(tinyDefaults("tiny"))
	p, ok := err.(Problems)
	if !ok {
		t.Fatalf("err = %v", err)
	}
	got := map[string]string{}
	for _, pr := range p {
		got[pr.Field] = pr.Message
	}
	for field, want := range map[string]string{
		"kinds[0]":     "cannot be replace: replace swaps words one for one, so it needs as many words in edit 1 as in the source: the source has 2, edit 1 has 4; choose refine or auto",
		"kinds[1]":     `must be one of auto, replace, refine (it is "swap")`,
		"kinds":        "has 3 entries for 2 edited prompts: one kind per edited prompt, in order",
		"replace_tail": `must be one of aligned, reference (it is "published")`,
	} {
		if got[field] != want {
			t.Errorf("%s: %q, want %q", field, got[field], want)
		}
	}
	if len(p) != 4 || len(s.CheckFields()) != 4 {
		t.Errorf("problems %v; CheckFields %v", p, s.CheckFields())
	}
	s.Kinds, s.ReplaceTail = []align.Choice{align.ForceRefine, align.ForceReplace}, ReplaceTailReference
	if err := s.Validate(tinyDefaults("tiny")); err != nil {
		t.Errorf("refine and a same-count replace: %v", err)
	}
}

// TestKindsReachTheController: the kind chosen and the replace tail of a
// spec are what align.New runs, and Resolved.Spec echoes them.
func TestKindsReachTheController(t *testing.T) {
	tok, err := clip.Default()
	if err != nil {
		t.Fatal(err)
	}
	s := Spec{Source: "a big cat", Targets: []string{"a cat sleeping", "a cat sleeping"}, Seed: ptr(uint64(1)),
		Kinds: []align.Choice{align.ForceRefine}}
	r, err := s.Resolve(tinyDefaults("tiny"))
	if err != nil {
		t.Fatal(err)
	}
	ctrl, err := align.New(tok, r.AlignConfig())
	if err != nil {
		t.Fatal(err)
	}
	if ctrl.Kind(0) != align.Refine || ctrl.Kind(1) != align.Replace {
		t.Errorf("kinds %v, %v; want refine (chosen) and replace (auto)", ctrl.Kind(0), ctrl.Kind(1))
	}
	if echo := r.Spec(); !reflect.DeepEqual(echo.Kinds, s.Kinds) || echo.ReplaceTail != "" || r.ReplaceTail != ReplaceTailAligned {
		t.Errorf("echo kinds %q, tail %q; resolved tail %q", echo.Kinds, echo.ReplaceTail, r.ReplaceTail)
	}
}

// TestReplaceTailOption: the spec's replace_tail switches the mapper of a
// swap whose words differ in token count between the reference's
// mapper[j, j] and the aligned tail ("cat" is one token, "hippopotamus"
// three, so the source's "sits", token 3, is the target's token 5).
func TestReplaceTailOption(t *testing.T) {
	tok, err := clip.Default()
	if err != nil {
		t.Fatal(err)
	}
	mapper := func(tail string) []float32 {
		s := Spec{Source: "a cat sits", Targets: []string{"a hippopotamus sits"}, Seed: ptr(uint64(1)), ReplaceTail: tail}
		r, err := s.Resolve(tinyDefaults("tiny"))
		if err != nil {
			t.Fatal(err)
		}
		ctrl, err := align.New(tok, r.AlignConfig())
		if err != nil {
			t.Fatal(err)
		}
		return ctrl.Mapper(0)
	}
	const n = clip.ContextLength
	for _, c := range []struct {
		tail           string
		sits, diagonal float32 // M[3,5] and M[5,5]
	}{{"", 1, 0}, {ReplaceTailAligned, 1, 0}, {ReplaceTailReference, 0, 1}} {
		m := mapper(c.tail)
		if m[3*n+5] != c.sits || m[5*n+5] != c.diagonal {
			t.Errorf("replace_tail %q: M[sits→sits] = %v, M[5,5] = %v; want %v and %v", c.tail, m[3*n+5], m[5*n+5], c.sits, c.diagonal)
		}
	}
}

// TestKindsLinkRoundTrip: kinds and the replace tail travel in a link, and
// a link made before they existed still opens with every target auto.
func TestKindsLinkRoundTrip(t *testing.T) {
	s := Spec{Source: "a big cat", Targets: []string{"a cat sleeping", "a big dog"}, Seed: ptr(uint64(2)),
		Kinds: []align.Choice{align.ForceRefine, align.ForceReplace}, ReplaceTail: ReplaceTailReference}
	link, err := EncodeLink(s)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeLink(link)
	if err != nil || !reflect.DeepEqual(back, s) {
		t.Errorf("round trip: %+v, %v; want %+v", back, err, s)
	}
	old := encodeRaw(t, []byte(`{"source":"a big cat","targets":["a cat sleeping"],"seed":2}`))
	if back, err := DecodeLink(old); err != nil || back.Kinds != nil || back.KindOf(0) != align.Auto || back.ReplaceTail != "" {
		t.Errorf("link without kinds: %+v, %v", back, err)
	}
	if !strings.HasPrefix(link, linkPrefix) {
		t.Errorf("link %q", link)
	}
}
