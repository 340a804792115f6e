package align

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// identityFrom is the TextSource of a target that keeps every position.
func identityFrom() []int {
	from := make([]int, n77)
	for n := range from {
		from[n] = n
	}
	return from
}

func TestTextSourceWorkedExamples(t *testing.T) {
	tok := tokenizer(t)
	shifted := func(changed []int, delta, after int) []int {
		from := identityFrom()
		for n := range from {
			if n > after {
				from[n] = n - delta
			}
		}
		for _, n := range changed {
			from[n] = -1
		}
		return from
	}
	cases := []struct {
		name, source, target string
		kind                 Choice
		referenceTail        bool
		want                 []int
	}{
		{"identical prompts keep everything", "a red circle", "a red circle", Auto, false, identityFrom()},
		{"one-token swap keeps all but the word", "a red circle on grass", "a blue circle on grass", Auto, false, shifted([]int{2}, 0, 0)},
		// "hippopotamus" is 3 tokens (hippo potam us), "cat" 1: the tail
		// (EOS and padding included) is two positions further on.
		{"a longer word shifts the tail", "a cat on grass", "a hippopotamus on grass", Auto, false, shifted([]int{2, 3, 4}, 2, 4)},
		{"an added word is the target's own", "a circle", "a red circle", Auto, false,
			append([]int{0, 1, -1, 2, 3}, identityFrom()[5:]...)},
		{"a forced refine of a swap keeps the aligned words", "a red circle", "a blue circle", ForceRefine, false, shifted([]int{2}, 0, 0)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctrl, err := New(tok, Config{Source: c.source, Targets: []string{c.target}, Steps: 10,
				Kinds: []Choice{c.kind}, ReferenceReplaceTail: c.referenceTail})
			if err != nil {
				t.Fatal(err)
			}
			if got := ctrl.TextSource(0); !slices.Equal(got, c.want) {
				t.Errorf("TextSource = %v\nwant         %v", got[:12], c.want[:12])
			}
		})
	}
}

// The reference tail misaligns the tokens after a swapped word of a
// different token count: those positions must keep the target's states,
// not take a different token's.
func TestTextSourceReferenceTailKeepsMisalignedOwn(t *testing.T) {
	tok := tokenizer(t)
	ctrl, err := New(tok, Config{Source: "a cat on grass", Targets: []string{"a hippopotamus on grass"}, Steps: 10,
		ReferenceReplaceTail: true})
	if err != nil {
		t.Fatal(err)
	}
	src, tgt := paddedIDs(tok.Encode("a cat on grass")), paddedIDs(tok.Encode("a hippopotamus on grass"))
	from := ctrl.TextSource(0)
	for n, w := range from {
		if w >= 0 && src[w] != tgt[n] {
			t.Errorf("position %d takes source %d: token %d ≠ %d", n, w, src[w], tgt[n])
		}
	}
	if from[5] != -1 || from[6] != -1 {
		t.Errorf("on/grass after the reference tail: got %v, want their own states (−1)", from[:8])
	}
}

// Random edits: a position takes the source's state only from the same
// token; word swaps (aligned tail) change exactly the swapped words' tokens
// and, when the target is shorter, the last padding positions, which the
// shifted tail leaves without a counterpart.
func TestTextSourceProperties(t *testing.T) {
	tok := tokenizer(t)
	words := []string{"a", "cat", "dog", "hippopotamus", "red", "photorealistic", "painting", "of", "the", "on", "mat,", "café", "🎨"}
	rng := rand.New(rand.NewPCG(7, 8))
	for trial := range 200 {
		ws := make([]string, 1+rng.IntN(8))
		for i := range ws {
			ws[i] = words[rng.IntN(len(words))]
		}
		source := strings.Join(ws, " ")
		tw := slices.Clone(ws)
		swap := rng.IntN(len(tw))
		if rng.IntN(2) == 0 {
			tw[swap] = words[rng.IntN(len(words))]
		} else {
			tw = slices.Insert(tw, swap, words[rng.IntN(len(words))])
		}
		target := strings.Join(tw, " ")
		ctrl, err := New(tok, Config{Source: source, Targets: []string{target}, Steps: 10})
		if err != nil {
			t.Fatalf("trial %d: %v", trial, err)
		}
		src, tgt := tok.Encode(source), tok.Encode(target)
		sp, tp := paddedIDs(src), paddedIDs(tgt)
		from := ctrl.TextSource(0)
		for n, w := range from {
			if w >= 0 && sp[w] != tp[n] {
				t.Fatalf("trial %d %q → %q: position %d takes source %d (%d ≠ %d)", trial, source, target, n, w, sp[w], tp[n])
			}
		}
		if ctrl.Kind(0) != Replace {
			continue
		}
		m, err := matchPrompts(src, tgt, Auto)
		if err != nil {
			t.Fatal(err)
		}
		own := 0
		for _, k := range m.swapped {
			own += len(m.target[k].Tokens)
		}
		own += max(0, len(contextIDs(src))-len(contextIDs(tgt)))
		got := 0
		for _, w := range from {
			if w < 0 {
				got++
			}
		}
		if got != own {
			t.Errorf("trial %d %q → %q: %d positions keep their own state; want the %d tokens of the swapped words", trial, source, target, got, own)
		}
	}
}
