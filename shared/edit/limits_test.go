package edit

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"reword/shared/align"
)

// randomWords is about n bytes of random lowercase words: text that
// compresses badly, as a link's prompts can.
func randomWords(rng *rand.Rand, n int) string {
	var b strings.Builder
	for b.Len() < n {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		for range 3 + rng.IntN(6) {
			b.WriteByte(byte('a' + rng.IntN(26)))
		}
	}
	return b.String()
}

// problemsOf returns Validate's Problems for s under the tiny defaults,
// failing the test when Validate returns anything else.
func problemsOf(t *testing.T, s Spec) Problems {
	t.Helper()
	var p Problems
	if err := s.Validate(tinyDefaults("tiny")); !errors.As(err, &p) {
		t.Fatalf("Validate: %v, want Problems", err)
	}
	return p
}

// TestValidateRefusesSpecsTooBigForALink: the server links every result,
// so a spec whose link would pass MaxLinkBytes (or whose JSON would pass
// MaxSpecBytes) must be refused as invalid before it runs, not fail as an
// internal error after the model ran.
func TestValidateRefusesSpecsTooBigForALink(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	long := Spec{Source: randomWords(rng, 1500), Seed: ptr(uint64(1))}
	for _, n := range []int{1500, 1700, 1500} {
		long.Targets = append(long.Targets, randomWords(rng, n))
	}
	// The same, its longest prompt the negative one.
	negative := long
	negative.Targets = []string{long.Targets[0], long.Targets[2]}
	negative.Negative = randomWords(rng, 1900)
	// Prompts that are each valid, but JSON-escape to six bytes a character.
	escaped := Spec{Source: strings.Repeat("<", MaxPromptBytes), Targets: []string{strings.Repeat(">", MaxPromptBytes-1)}, Seed: ptr(uint64(1))}
	for _, c := range []struct {
		name, field string
		s           Spec
		want        []string
	}{
		{"link", "targets[1]", long, []string{"the link would be", fmt.Sprintf("the limit is %d", MaxLinkBytes), "shorten the prompts"}},
		{"negative", "negative", negative, []string{"the link would be"}},
		{"json", "source", escaped, []string{"bytes of JSON", fmt.Sprintf("the limit is %d", MaxSpecBytes), "shorten the prompts"}},
	} {
		p := problemsOf(t, c.s)
		// On the longest prompt: the one to shorten first.
		if len(p) != 1 || p[0].Field != c.field {
			t.Fatalf("%s: problems %v, want one on %s", c.name, p, c.field)
		}
		for _, w := range c.want {
			if !strings.Contains(p[0].Message, w) {
				t.Errorf("%s: message %q, want it to mention %q", c.name, p[0].Message, w)
			}
		}
	}
	// Two targets fewer fits: the check refuses only what EncodeLink does.
	long.Targets = long.Targets[:1]
	r, err := long.Resolve(tinyDefaults("tiny"))
	if err != nil {
		t.Fatalf("source and one target: %v", err)
	}
	if _, err := EncodeLink(r.Spec()); err != nil {
		t.Fatalf("resolved spec has no link: %v", err)
	}
}

// TestProblemsAreCapped: a client's problem list, and the words it echoes,
// must not grow with what the client sent: an error reply many times the
// size of the request is an amplifier.
func TestProblemsAreCapped(t *testing.T) {
	huge := strings.Repeat("w", 10_000)
	s := Spec{Source: "a cat", Targets: []string{"a dog"}, Seed: ptr(uint64(1)), Reweights: map[string]float64{}}
	for i := range 100 {
		s.Reweights[fmt.Sprint(i, huge)] = 99
	}
	p := problemsOf(t, s)
	if len(p) != MaxProblems {
		t.Fatalf("%d problems, want MaxProblems (%d)", len(p), MaxProblems)
	}
	// reweights has too many words, and each of the first MaxWordEntries
	// has two problems: its factor and its length.
	more := 1 + 2*MaxWordEntries - MaxProblems
	if last := p[len(p)-1].Message; !strings.HasSuffix(last, fmt.Sprintf("; %d more problems were found and are not listed", more)) {
		t.Errorf("last problem %q, want it to say %d more were found", last, more)
	}
	if n := len(p.Error()); n > 8<<10 {
		t.Errorf("the problems are %d bytes of text, want at most 8 KiB", n)
	}
	if p[0].Field != "reweights" || !strings.Contains(p[0].Message, "too many words: 100") {
		t.Errorf("first problem %v, want the limit's, which the cap never leaves out", p[0])
	}
	for _, pr := range p[1:] {
		if !strings.HasPrefix(pr.Field, `reweights["`) || !strings.HasSuffix(pr.Field, `…"]`) || len(pr.Field) > 64 {
			t.Errorf("field %q, want the word abbreviated", pr.Field)
		}
	}
	// A word that can be valid keeps its exact path, which the editor
	// matches to the word's controls.
	word := strings.Repeat("é", MaxWordBytes/2)
	s.Reweights = map[string]float64{word: 1}
	if p := problemsOf(t, s); len(p) != 1 || p[0].Field != `reweights["`+word+`"]` {
		t.Errorf("problems %v, want one on the word's exact path", p)
	}
	// Other client text a problem quotes is abbreviated too, at a
	// character boundary.
	s = Spec{Source: "a cat", Targets: []string{"a dog"}, Seed: ptr(uint64(1)), Scheduler: strings.Repeat("é", 5000)}
	if p := problemsOf(t, s); len(p) != 1 || !strings.Contains(p[0].Message, `(it is "`+strings.Repeat("é", 20)+`…")`) {
		t.Errorf("problems %v, want the scheduler abbreviated", p)
	}
}

// TestValidateChecksNoEntryPastTheLimits: the entries past a limit are
// refused by the limit's problem and not checked one by one, so that
// validation costs what the limits allow, not what a client sent (5000
// kinds once aligned 5000 prompt pairs, about 0.7 s of CPU).
func TestValidateChecksNoEntryPastTheLimits(t *testing.T) {
	many := func(n int, v string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = v
		}
		return out
	}
	kinds := func(n int) []align.Choice {
		out := make([]align.Choice, n)
		for i := range out {
			out[i] = align.ForceReplace // "a cat" cannot become "a big dog" word for word
		}
		return out
	}
	blends := make([]Blend, 5000)
	for i := range blends {
		blends[i] = Blend{Words: []string{"horse"}}
	}
	words := func(n int, prefix string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprint(prefix, i)
		}
		return out
	}
	base := Spec{Source: "a cat", Seed: ptr(uint64(1))}
	for _, c := range []struct {
		name  string
		edit  func(*Spec)
		found int // the limit's problem, and those of the entries within it
	}{
		{"targets and kinds", func(s *Spec) { s.Targets, s.Kinds = many(5000, "a big dog"), kinds(5000) }, 1 + MaxTargets},
		{"kinds", func(s *Spec) { s.Targets, s.Kinds = many(2, "a big dog"), kinds(5000) }, 1 + 2},
		{"blend", func(s *Spec) { s.Targets, s.Blend = many(2, "a dog"), blends }, 1 + 2},
		{"blend words", func(s *Spec) {
			s.Targets, s.Blend = many(1, "a dog"), []Blend{{Words: []string{"cat"}, Exclude: words(5000, "horse")}}
		}, 1 + MaxWordEntries - 1}, // "cat" occurs; each excluded word does not
		{"cross_words", func(s *Spec) {
			s.Targets, s.CrossWords = many(1, "a dog"), map[string]Window{}
			for _, w := range words(5000, "horse") {
				s.CrossWords[w] = Fraction(2)
			}
		}, 1 + 2*MaxWordEntries}, // each word: its window and its occurrence
		{"reweights", func(s *Spec) {
			s.Targets, s.Reweights = many(1, "a dog"), map[string]float64{}
			for _, w := range words(5000, "horse") {
				s.Reweights[w] = 1
			}
		}, 1 + MaxWordEntries},
	} {
		s := base.Clone()
		c.edit(&s)
		p := problemsOf(t, s)
		if c.found <= MaxProblems {
			if len(p) != c.found {
				t.Errorf("%s: %d problems, want %d: %v", c.name, len(p), c.found, p)
			}
			continue
		}
		more := fmt.Sprintf("; %d more problems were found and are not listed", c.found-MaxProblems)
		if len(p) != MaxProblems || !strings.HasSuffix(p[len(p)-1].Message, more) {
			t.Errorf("%s: %d problems ending %q, want %d ending %q", c.name, len(p), p[len(p)-1].Message, MaxProblems, more)
		}
	}
}

// TestSpecsResolveAlikeWhereverTheyComeFrom: ParseSpec (links, the CLI)
// normalises a spec as it decodes it, but a spec decoded inside another
// message (the socket's run) or built in code is not; Resolve must treat
// both alike, so trailing auto kinds and empty blend entries do not count
// as entries for targets that are not there.
func TestSpecsResolveAlikeWhereverTheyComeFrom(t *testing.T) {
	raw := Spec{Source: "a red cat", Seed: ptr(uint64(1)), Targets: []string{"a red dog"},
		Kinds: []align.Choice{align.Auto, align.Auto}, Blend: []Blend{{Words: []string{"cat"}}, {}}}
	js, err := raw.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseSpec(js)
	if err != nil {
		t.Fatal(err)
	}
	d := tinyDefaults("tiny")
	want, err := parsed.Resolve(d)
	if err != nil {
		t.Fatalf("parsed spec: %v", err)
	}
	got, err := raw.Resolve(d)
	if err != nil {
		t.Fatalf("spec as decoded without normalising: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("resolved %+v, want %+v", got, want)
	}
	if p := raw.CheckFields(); len(p) != 0 {
		t.Errorf("CheckFields: %v", p)
	}
}
