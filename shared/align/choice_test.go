package align

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestChosenKinds: a chosen kind overrides the word-count rule in the diff
// and in the controller alike, and a replace the prompts cannot take is
// refused with the word counts.
func TestChosenKinds(t *testing.T) {
	tok := tokenizer(t)
	for _, tc := range []struct {
		source, target   string
		choice           Choice
		kind             Kind
		changed, created string // the source and target words marked
	}{
		// Auto takes the same word count for a swap and shifts the meaning.
		{"a big cat", "a cat sleeping", Auto, Replace, "big cat", "cat sleeping"},
		{"a big cat", "a cat sleeping", "", Replace, "big cat", "cat sleeping"},
		{"a big cat", "a cat sleeping", ForceRefine, Refine, "big", "sleeping"},
		{"a red circle", "a blue circle", ForceRefine, Refine, "red", "blue"},
		{"a red circle", "a red circle", ForceRefine, Refine, "", ""},
		{"a red circle", "a red circle", ForceReplace, Replace, "", ""},
		{"a circle", "a big circle", Auto, Refine, "", "big"},
		{"a red circle", "a blue circle", ForceReplace, Replace, "red", "blue"},
	} {
		src, tgt := tok.Encode(tc.source), tok.Encode(tc.target)
		d, err := CompareAs(src, tgt, tc.choice)
		if err != nil {
			t.Fatalf("%q → %q as %q: %v", tc.source, tc.target, tc.choice, err)
		}
		ctl, err := New(tok, Config{Source: tc.source, Targets: []string{tc.target}, Kinds: []Choice{tc.choice}, Steps: 1, Cross: Window{End: 1}})
		if err != nil {
			t.Fatal(err)
		}
		if d.Kind != tc.kind || ctl.Kind(0) != tc.kind {
			t.Errorf("%q → %q as %q: diff kind %v, controller kind %v, want %v", tc.source, tc.target, tc.choice, d.Kind, ctl.Kind(0), tc.kind)
		}
		marked := func(text string, words []Word, changed []bool) string {
			var out []string
			for k, w := range words {
				if changed[k] {
					out = append(out, text[w.Start:w.End])
				}
			}
			return strings.Join(out, " ")
		}
		if got := marked(tc.source, d.Source, d.SourceChanged); got != tc.changed {
			t.Errorf("%q → %q as %q: source words marked %q, want %q", tc.source, tc.target, tc.choice, got, tc.changed)
		}
		if got := marked(tc.target, d.Target, d.TargetChanged); got != tc.created {
			t.Errorf("%q → %q as %q: target words marked %q, want %q", tc.source, tc.target, tc.choice, got, tc.created)
		}
	}
}

// TestChosenKindMappers: a forced refinement runs the global alignment's
// mapper, and identical prompts forced either way run the identity, as a
// reweight does.
func TestChosenKindMappers(t *testing.T) {
	tok := tokenizer(t)
	ctl, err := New(tok, Config{Source: "a big cat", Targets: []string{"a cat sleeping", "a big cat", "a big cat"},
		Kinds: []Choice{ForceRefine, ForceReplace, ForceRefine}, Steps: 1})
	if err != nil {
		t.Fatal(err)
	}
	gather, keep := RefineMapper(tok.Encode("a big cat").IDs, tok.Encode("a cat sleeping").IDs)
	g := ctl.Mapper(0)
	for n := range n77 {
		for w := range n77 {
			want := float32(0)
			if keep[n] == 1 && gather[n] == w {
				want = 1
			}
			if at(g, w, n) != want {
				t.Fatalf("forced refine: G[%d,%d] = %v, want %v", w, n, at(g, w, n), want)
			}
		}
	}
	for e := 1; e <= 2; e++ {
		for w := range n77 {
			for n := range n77 {
				if want := float32(map[bool]int{true: 1}[w == n]); at(ctl.Mapper(e), w, n) != want {
					t.Fatalf("identical prompts as %v: G[%d,%d] = %v, want %v", ctl.Kind(e), w, n, at(ctl.Mapper(e), w, n), want)
				}
			}
		}
	}
}

// TestChoiceErrors: a replace across different word counts names both
// counts; an unknown choice lists the known ones; more kinds than targets
// are refused.
func TestChoiceErrors(t *testing.T) {
	tok := tokenizer(t)
	_, err := CompareAs(tok.Encode("a circle"), tok.Encode("a big red circle"), ForceReplace)
	var ce *ChoiceError
	if !errors.As(err, &ce) || ce.SourceWords != 2 || ce.TargetWords != 4 ||
		!strings.Contains(ce.Reason("edit 1"), "the source has 2, edit 1 has 4; choose refine or auto") {
		t.Errorf("replace of 2 words by 4: %v", err)
	}
	_, err = New(tok, Config{Source: "a circle", Targets: []string{"a circle", "a big red circle"}, Kinds: []Choice{Auto, ForceReplace}, Steps: 1})
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "target 2") {
		t.Errorf("New with an impossible replace: %v", err)
	}
	if _, err := CompareAs(tok.Encode("a"), tok.Encode("b"), "swap"); err == nil || !strings.Contains(err.Error(), `"swap" is unknown: choose auto, replace or refine`) {
		t.Errorf("unknown choice: %v", err)
	}
	if _, err := New(tok, Config{Source: "a", Targets: []string{"b"}, Kinds: []Choice{Auto, Auto}, Steps: 1}); err == nil {
		t.Error("two kinds for one target accepted")
	}
	if !slices.Equal(Choices, []Choice{"auto", "replace", "refine"}) {
		t.Errorf("choices %q: the spec's names changed", Choices)
	}
}

// TestReplaceTailOfRealPrompts shows the two replace tails on "a cat sits
// on a mat" → "a hippopotamus sits on a mat", where the swapped word grows
// from one token to three: aligned, every later source token feeds the
// same word of the target two places on, the padding included; the
// reference's mapper[j, j] feeds each target token the source token at
// its own index instead, so "sits" reads "a" and the source's "sits" is
// read by nothing.
func TestReplaceTailOfRealPrompts(t *testing.T) {
	tok := tokenizer(t)
	mapper := func(referenceTail bool) []float32 {
		ctl, err := New(tok, Config{Source: "a cat sits on a mat", Targets: []string{"a hippopotamus sits on a mat"},
			Kinds: []Choice{ForceReplace}, Steps: 1, ReferenceReplaceTail: referenceTail})
		if err != nil {
			t.Fatal(err)
		}
		return ctl.Mapper(0)
	}
	if n := len(Words(tok.Encode("a hippopotamus"))[1].Tokens); n != 3 {
		t.Fatalf("hippopotamus is %d tokens; the test wants 3", n)
	}
	aligned, reference := mapper(false), mapper(true)
	// Source tokens: a 1, cat 2, sits 3, on 4, a 5, mat 6, EOS 7.
	// Target tokens: a 1, hippopotamus 2–4, sits 5, on 6, a 7, mat 8, EOS 9.
	for _, c := range []struct {
		m    []float32
		w, n int
		want float32
	}{
		{aligned, 2, 2, 1.0 / 3}, {aligned, 2, 4, 1.0 / 3}, {aligned, 3, 5, 1}, {aligned, 6, 8, 1}, {aligned, 7, 9, 1}, {aligned, 60, 62, 1},
		{aligned, 5, 5, 0}, {aligned, 60, 60, 0},
		{reference, 2, 2, 1.0 / 3}, {reference, 2, 4, 1.0 / 3}, {reference, 5, 5, 1}, {reference, 8, 8, 1}, {reference, 60, 60, 1},
		{reference, 3, 5, 0}, {reference, 7, 9, 0},
	} {
		if got := at(c.m, c.w, c.n); got != c.want {
			name := "aligned"
			if &c.m[0] == &reference[0] {
				name = "reference"
			}
			t.Errorf("%s tail: M[%d,%d] = %v, want %v", name, c.w, c.n, got, c.want)
		}
	}
	if rowSum(reference, 3) != 0 || rowSum(aligned, 3) != 1 {
		t.Errorf("source \"sits\" feeds %v (reference) and %v (aligned) of attention; want 0 and 1", rowSum(reference, 3), rowSum(aligned, 3))
	}
}
