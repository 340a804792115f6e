package align

import (
	"strings"
	"testing"
)

// TestCompareIsWhatNewRuns: the diff the editor shows has the kind New
// gives the same target, and marks exactly the words whose tokens the
// mapper does not carry over one to one.
func TestCompareIsWhatNewRuns(t *testing.T) {
	tok := tokenizer(t)
	for _, tc := range []struct {
		source, target   string
		kind             Kind
		changed, created string // the source and target words marked
	}{
		{"a red circle", "a blue circle", Replace, "red", "blue"},
		{"A cat, sitting", "A dog, sitting", Replace, "cat,", "dog,"},
		{"a circle", "a big red circle", Refine, "", "big red"},
		{"a big red circle", "big", Refine, "a red circle", ""},
		{"a red circle", "a  red circle", Reweight, "", ""},
		{"a photo of a cat", "a photo of a hippopotamus", Replace, "cat", "hippopotamus"},
	} {
		src, tgt := tok.Encode(tc.source), tok.Encode(tc.target)
		d := Compare(src, tgt)
		ctl, err := New(tok, Config{Source: tc.source, Targets: []string{tc.target}, Steps: 1, Cross: Window{End: 1}})
		if err != nil {
			t.Fatal(err)
		}
		if d.Kind != tc.kind || ctl.Kind(0) != d.Kind {
			t.Errorf("%q → %q: diff kind %v, controller kind %v, want %v", tc.source, tc.target, d.Kind, ctl.Kind(0), tc.kind)
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
			t.Errorf("%q → %q: source words marked %q, want %q", tc.source, tc.target, got, tc.changed)
		}
		if got := marked(tc.target, d.Target, d.TargetChanged); got != tc.created {
			t.Errorf("%q → %q: target words marked %q, want %q", tc.source, tc.target, got, tc.created)
		}
	}
}

// TestCounterparts: each target word names the source word it stands for
// (kept or swapped), and added words none, so that an editor can show a
// word's attention next to its counterpart's.
func TestCounterparts(t *testing.T) {
	tok := tokenizer(t)
	for _, tc := range []struct {
		source, target string
		want           string // per target word: its source word, or "+" for an added one
	}{
		{"a red circle", "a blue circle", "a red circle"},
		{"a red circle", "a red circle", "a red circle"},
		{"a circle", "a big red circle", "a + + circle"},
		{"a red circle on a white background", "a red circle on grass", "a red circle on +"},
		{"a big red circle", "red", "red"},
	} {
		d := Compare(tok.Encode(tc.source), tok.Encode(tc.target))
		var got []string
		for k := range d.Target {
			if c := d.Counterpart[k]; c < 0 {
				got = append(got, "+")
			} else {
				w := d.Source[c]
				got = append(got, tc.source[w.Start:w.End])
			}
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%q → %q: counterparts %q, want %q", tc.source, tc.target, strings.Join(got, " "), tc.want)
		}
	}
}

func TestWordsSplitOnWhiteSpace(t *testing.T) {
	tok := tokenizer(t)
	e := tok.Encode("  a  cat,\tsitting ")
	var got []string
	for _, w := range Words(e) {
		got = append(got, e.Text[w.Start:w.End])
		if len(w.Tokens) == 0 {
			t.Errorf("word %q has no tokens", e.Text[w.Start:w.End])
		}
	}
	if strings.Join(got, "|") != "a|cat,|sitting" {
		t.Errorf("words %q", got)
	}
}
