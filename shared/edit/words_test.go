package edit

import (
	"strings"
	"testing"

	"reword/shared/clip"
)

// TestWordsKeepTargetIndexes: a target over MaxPromptBytes holds no words
// but keeps its place, so that the blend words of the targets after it are
// looked up in their own target, not the next one.
func TestWordsKeepTargetIndexes(t *testing.T) {
	s := Spec{Source: "a cat", Targets: []string{strings.Repeat("x", MaxPromptBytes+52), "a red dog", "a blue bird"}, Seed: ptr(uint64(1))}
	s.SetBlend(1, Blend{Words: []string{"dog"}})
	tok, err := clip.Default()
	if err != nil {
		t.Fatal(err)
	}
	in := s.Words(tok)
	if found, _ := in.InBlendOf(1, "dog"); !found {
		t.Error(`InBlendOf(1, "dog") = false: edit 2 is "a red dog"`)
	}
	if found, _ := in.InBlendOf(2, "dog"); found {
		t.Error(`InBlendOf(2, "dog") = true: edit 3 is "a blue bird"`)
	}
	p := problemsOf(t, s)
	if len(p) != 1 || p[0].Field != "targets[0]" {
		t.Errorf("problems %v, want only the long target's", p)
	}
	if got := s.WithoutStrayWords(tok).BlendOf(1).Words; len(got) != 1 {
		t.Errorf("WithoutStrayWords left blend words %q of edit 2, want dog", got)
	}
}
