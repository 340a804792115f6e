package web

import (
	"strings"
	"testing"

	"reword/shared/align"
	"reword/shared/clip"
)

func tokenizer(t *testing.T) *clip.Tokenizer {
	t.Helper()
	tok, err := clip.Default()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func statuses(words []PromptWord) string {
	var b strings.Builder
	for i, w := range words {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(w.Text + "=" + string(w.Status))
	}
	return b.String()
}

func TestCompareClassifiesAndMarksWords(t *testing.T) {
	tok := tokenizer(t)
	for _, tc := range []struct {
		name, source, target string
		kind                 align.Kind
		src, tgt             string
	}{
		{"swap", "a red circle", "a blue circle", align.Replace,
			"a=kept red=swapped circle=kept", "a=kept blue=swapped circle=kept"},
		{"swap with punctuation and case", "A cat, sitting", "A dog, sitting", align.Replace,
			"A=kept cat,=swapped sitting=kept", "A=kept dog,=swapped sitting=kept"},
		{"added word", "a circle", "a big red circle", align.Refine,
			"a=kept circle=kept", "a=kept big=inserted red=inserted circle=kept"},
		{"removed word", "a big circle", "a circle", align.Refine,
			"a=kept big=removed circle=kept", "a=kept circle=kept"},
		{"identical prompt is a reweight", "a red circle", "a  red circle", align.Reweight,
			"a=kept red=kept circle=kept", "a=kept red=kept circle=kept"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Compare(tok, tc.source, tc.target)
			if c.Empty || c.Kind != tc.kind {
				t.Errorf("kind %v (empty %v), want %v", c.Kind, c.Empty, tc.kind)
			}
			if got := statuses(c.Source); got != tc.src {
				t.Errorf("source words %q, want %q", got, tc.src)
			}
			if got := statuses(c.Target); got != tc.tgt {
				t.Errorf("target words %q, want %q", got, tc.tgt)
			}
		})
	}
}

func TestCompareEmptyTarget(t *testing.T) {
	c := Compare(tokenizer(t), "a red circle", "   ")
	if !c.Empty || len(c.Target) != 0 || c.Tokens != 0 {
		t.Errorf("empty target: %+v", c)
	}
}

func TestSplitWordsMarksWordsPastTheContext(t *testing.T) {
	tok := tokenizer(t)
	// 74 one-token words fit, then "photorealistic" straddles the limit
	// (more than one token), then "cat" is past it.
	prompt := strings.Repeat("a ", 74) + "photorealistic cat"
	enc := tok.Encode(prompt)
	words := SplitWords(enc)
	if len(words) != 76 {
		t.Fatalf("%d words, want 76", len(words))
	}
	if len(tok.Encode("photorealistic").IDs)-2 < 2 {
		t.Fatal("test assumption broken: photorealistic is one token")
	}
	if got := words[73].Status; got != WordKept {
		t.Errorf("word 74 is %s, want kept", got)
	}
	if got := words[74].Status; got != WordCut {
		t.Errorf("straddling word is %s, want cut", got)
	}
	if got := words[75].Status; got != WordIgnored {
		t.Errorf("word past the limit is %s, want ignored", got)
	}
	c := Compare(tok, "a cat", prompt)
	if c.Dropped == 0 || c.Tokens <= MaxContentTokens {
		t.Errorf("comparison reports %d tokens, %d dropped", c.Tokens, c.Dropped)
	}
	if got := c.Target[75].Status; got != WordIgnored {
		t.Errorf("an ignored word must stay ignored in a comparison, got %s", got)
	}
}

func TestSplitWordsOffsets(t *testing.T) {
	tok := tokenizer(t)
	prompt := "un  café 🐱 Cat,"
	words := SplitWords(tok.Encode(prompt))
	want := []struct {
		text, key        string
		start16, end16   int
		wantTokens       bool
		startByte, endBy int
	}{
		{"un", "un", 0, 2, true, 0, 2},
		{"café", "café", 4, 8, true, 4, 9},
		{"🐱", "🐱", 9, 11, true, 10, 14},
		{"Cat,", "cat", 12, 16, true, 15, 19},
	}
	if len(words) != len(want) {
		t.Fatalf("%d words, want %d: %+v", len(words), len(want), words)
	}
	for i, w := range want {
		got := words[i]
		if got.Text != w.text || got.Key != w.key || got.Start16 != w.start16 || got.End16 != w.end16 ||
			got.Start != w.startByte || got.End != w.endBy || (len(got.Tokens) > 0) != w.wantTokens {
			t.Errorf("word %d: %+v, want %+v", i, got, w)
		}
		// The key must find the word in its prompt, as the server will.
		if idx := align.WordTokens(tok, tok.Encode(prompt), got.Key); len(idx) == 0 {
			t.Errorf("key %q does not match its own prompt", got.Key)
		}
	}
}

// TestDiffShowsRemovedWords: the words a target drops from the source are
// shown among its own, where they stood (before the words that replace
// them), and the kind says whether words were added, removed or both.
func TestDiffShowsRemovedWords(t *testing.T) {
	tok := tokenizer(t)
	for _, tc := range []struct {
		source, target string
		kind, words    string
	}{
		{"a red circle on a white background", "a red circle on grass", "add-remove",
			"a=kept red=kept circle=kept on=kept -a=removed -white=removed -background=removed grass=inserted"},
		{"a big circle", "a circle", "remove", "a=kept -big=removed circle=kept"},
		{"a circle", "a big red circle", "add", "a=kept big=inserted red=inserted circle=kept"},
		{"a red circle", "a blue circle", "swap", "a=kept blue=swapped circle=kept"},
		{"a red circle", "a red circle", "reweight", "a=kept red=kept circle=kept"},
	} {
		c := Compare(tok, tc.source, tc.target)
		if kind, _ := c.KindName(); kind != tc.kind {
			t.Errorf("%q → %q: kind %q, want %q", tc.source, tc.target, kind, tc.kind)
		}
		var got []string
		for _, w := range c.DiffWords() {
			prefix := ""
			if w.FromSource {
				prefix = "-"
			}
			got = append(got, prefix+w.Text+"="+string(w.Status))
		}
		if strings.Join(got, " ") != tc.words {
			t.Errorf("%q → %q: diff %q, want %q", tc.source, tc.target, strings.Join(got, " "), tc.words)
		}
	}
	if _, text := Compare(tok, "a red circle on a white background", "a red circle on grass").KindName(); text != "add & remove" {
		t.Errorf("label %q", text)
	}
}

func TestPlainWordsKeepOnlyTheContextMarks(t *testing.T) {
	words := []PromptWord{{Text: "a", Status: WordSwapped}, {Text: "b", Status: WordRemoved}, {Text: "c", Status: WordIgnored}, {Text: "d", Status: WordCut}}
	if got := statuses(plainWords(words)); got != "a=kept b=kept c=ignored d=cut" {
		t.Errorf("plain words %q", got)
	}
	if words[0].Status != WordSwapped {
		t.Error("plainWords changed its input")
	}
}

// TestCompareAsChosenKind: a chosen kind re-marks the words; a replace the
// prompts cannot take falls back to what auto gives, marked Refused; the
// menu's auto entry names what it resolves to.
func TestCompareAsChosenKind(t *testing.T) {
	tok, err := clip.Default()
	if err != nil {
		t.Fatal(err)
	}
	c := CompareAs(tok, "a red circle", "a blue circle", align.ForceRefine)
	if name, _ := c.KindName(); name != "add-remove" || c.Refused || c.Choice != align.ForceRefine {
		t.Errorf("forced refine: kind %q, refused %v, choice %q", name, c.Refused, c.Choice)
	}
	c = CompareAs(tok, "a red circle", "a blue circle on grass", align.ForceReplace)
	if name, _ := c.KindName(); name != "add-remove" || !c.Refused {
		t.Errorf("impossible replace: kind %q, refused %v; want auto's add-remove, refused", name, c.Refused)
	}
	if l := ChoiceLabel(align.Auto, "swap"); l != "auto: swap" {
		t.Errorf("auto label %q", l)
	}
	if l := ChoiceLabel(align.ForceRefine, "swap"); l != "refine" {
		t.Errorf("refine label %q", l)
	}
}
