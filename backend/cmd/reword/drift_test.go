package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"reword/backend/diffusion"
	"reword/models/tiny/tinytest"
)

func TestParsePairs(t *testing.T) {
	in := "# swaps\n\n[colour] a red car -> a blue car\n  a cat on a mat->a dog on a mat  \n"
	pairs, err := readPairs(strings.NewReader(in), "pairs.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := []driftPair{{"colour", "a red car", "a blue car"}, {groupFile, "a cat on a mat", "a dog on a mat"}}
	if len(pairs) != len(want) || pairs[0] != want[0] || pairs[1] != want[1] {
		t.Errorf("read %+v, want %+v", pairs, want)
	}
	for _, c := range []struct{ in, say string }{
		{"a red car\n", "pairs.txt:1:"},
		{"# only a comment\n", "holds no pairs"},
		{"ok -> fine\n[x a -> b\n", "pairs.txt:2:"},
		{"[] a -> b\n", "empty group"},
		{"a -> b -> c\n", "one \"->\""},
		{" -> b\n", "both sides"},
	} {
		if _, err := readPairs(strings.NewReader(c.in), "pairs.txt"); err == nil || !strings.Contains(err.Error(), c.say) {
			t.Errorf("%q: error %v, want one mentioning %q", c.in, err, c.say)
		}
	}
}

// TestDriftOnTinyModel runs the committed text encoder through ONNX
// Runtime: identical prompts are identical, its causal attention keeps the
// tokens before a swap exactly, and the swapped word moves.
func TestDriftOnTinyModel(t *testing.T) {
	dir := tinytest.Private(t)
	e, err := diffusion.Load(dir, diffusion.Options{Threads: 1, Instrument: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx := context.Background()

	t.Run("identical prompts", func(t *testing.T) {
		p := "a big red circle on the left on grass"
		d, err := measureDrift(ctx, e, []driftPair{{"same", p, p}})
		if err != nil {
			t.Fatal(err)
		}
		if n := len(d[0][groupSwapped]) + len(d[0][groupAfter]); n != 0 {
			t.Errorf("identical prompts have %d swapped or after tokens", n)
		}
		if len(d[0][groupBefore]) != 10 || len(d[0][groupEnd]) != 77-10 {
			t.Errorf("groups of %d and %d tokens, want BOS + 9 words and 67 EOS/padding", len(d[0][groupBefore]), len(d[0][groupEnd]))
		}
		for g, v := range d[0] {
			for i, c := range v {
				if c != 1 {
					t.Errorf("%s token %d: cosine %v, want 1", g, i, c)
				}
			}
		}
	})

	t.Run("swaps", func(t *testing.T) {
		pairs, err := scenePairs(6)
		if err != nil {
			t.Fatal(err)
		}
		pairs = append(pairs, driftPair{"given", "a red circle on the left", "an orange circle on the left"})
		drifts, err := measureDrift(ctx, e, pairs)
		if err != nil {
			t.Fatal(err)
		}
		for i, d := range drifts {
			if len(d[groupBefore]) == 0 || len(d[groupSwapped]) == 0 {
				t.Fatalf("%q → %q: groups %v", pairs[i].source, pairs[i].target, d)
			}
			// BOS sees only itself, in a causal encoder as in the tiny
			// model's windowed one, so it never drifts; the padding does
			// not either in the windowed encoder, where it sees only itself.
			if c := d[groupBefore][0]; c < 1-1e-9 {
				t.Errorf("%q → %q: BOS has cosine %v, want 1", pairs[i].source, pairs[i].target, c)
			}
			for k, c := range d[groupEnd] {
				if c < 1-1e-9 {
					t.Errorf("%q → %q: EOS/padding token %d has cosine %v, want 1 (windowed encoder)", pairs[i].source, pairs[i].target, k, c)
				}
			}
			var st driftStats
			st.add(d[groupSwapped])
			if st.Mean > 0.99 {
				t.Errorf("%q → %q: the swapped word kept its state (cosine %v)", pairs[i].source, pairs[i].target, st.Mean)
			}
		}
		// The article changes with the colour word, so it belongs to the swap.
		last := drifts[len(drifts)-1]
		if len(last[groupBefore]) != 1 || len(last[groupSwapped]) != 2 || len(last[groupAfter]) != 4 {
			t.Errorf("\"a red\" → \"an orange\": %d before, %d swapped, %d after; want 1, 2, 4",
				len(last[groupBefore]), len(last[groupSwapped]), len(last[groupAfter]))
		}
		summary := summarizeDrift(pairs, drifts)
		if len(summary) != 4 || summary[3].Group != "all" || summary[3].Pairs != len(pairs) || summary[0].Pairs != 6 {
			t.Errorf("summary rows %+v", summary)
		}
		var out bytes.Buffer
		if err := printDrift(&out, "tiny", summary); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"| colour swap", "| shape swap", "| given", "| all", "| before mean", "| EOS+padding min"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("report lacks %q:\n%s", want, out.String())
			}
		}
	})

	t.Run("token count must not change", func(t *testing.T) {
		_, err := measureDrift(ctx, e, []driftPair{{"given", "a red circle", "a red circle on grass"}})
		if err == nil || !strings.Contains(err.Error(), "token count") || !strings.Contains(err.Error(), `"a red circle" has 5 tokens`) {
			t.Errorf("error %v, want one naming the token counts", err)
		}
	})

	t.Run("command", func(t *testing.T) {
		var out, errb bytes.Buffer
		file := filepath.Join(t.TempDir(), "pairs.txt")
		if err := os.WriteFile(file, []byte("[cars] a red car -> a blue car\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if code := run([]string{"bench", "drift", "-model", dir, "-threads", "1", "-json", "-prompts", file, "-pair", "a cat -> a dog"}, &out, &errb); code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		var got struct {
			Summary []driftSummary  `json:"summary"`
			Pairs   []driftPairJSON `json:"pairs"`
		}
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatalf("%v in %s", err, out.String())
		}
		if len(got.Pairs) != 2 || got.Pairs[1].Group != "cars" || len(got.Summary) != 3 || got.Summary[0].Groups[groupEnd].Min != 1 {
			t.Errorf("JSON %s", out.String())
		}
		for _, c := range []struct {
			args []string
			say  string
		}{
			{[]string{"-pair", "a red car -> a red fire truck"}, "keep the token count"},
			{[]string{"-pair", "a red car"}, "SOURCE -> TARGET"},
			{[]string{"-n", "0"}, "--n is 0"},
			{[]string{"-n", "3", "-pair", "a -> b"}, "cannot go with"},
			{[]string{"-prompts", filepath.Join(dir, "nothing.txt")}, "--prompts"},
		} {
			errb.Reset()
			if code := run(append([]string{"bench", "drift", "-model", dir}, c.args...), &out, &errb); code != 2 || !strings.Contains(errb.String(), c.say) {
				t.Errorf("%v: exit %d, stderr %q; want 2 and %q", c.args, code, errb.String(), c.say)
			}
		}
	})
}
