package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"text/tabwriter"

	"reword/shared/clip"
)

func init() {
	registerBench(benchmark{name: "drift", summary: "text-encoder drift: hidden states of a prompt vs its one-word swap, by token group", run: runBenchDrift})
}

func runBenchDrift(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench drift", "", stderr)
	ef := addEngineFlags(fs)
	n := fs.Int("n", 60, "colour swaps and as many shape swaps built from the tiny model's captions (when no -prompts or -pair is given)")
	file := fs.String("prompts", "", "file of pairs, one `SOURCE -> TARGET` a line, optionally led by `[group]`; # starts a comment")
	var given pairFlags
	fs.Var(&given, "pair", "a pair `SOURCE -> TARGET` (repeatable; with or instead of -prompts)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("unexpected arguments %q", fs.Args())
	}
	pairs := []driftPair(given)
	if *file != "" {
		f, err := os.Open(*file)
		if err != nil {
			return usageError("--prompts: %v", err)
		}
		read, err := readPairs(f, *file)
		f.Close()
		if err != nil {
			return usageError("--prompts: %v", err)
		}
		pairs = append(pairs, read...)
	}
	if len(pairs) == 0 {
		if *n < 1 {
			return usageError("--n is %d: want 1 or more pairs of each swap", *n)
		}
		var err error
		if pairs, err = scenePairs(*n); err != nil {
			return err
		}
	} else if flagSet(fs, "n") {
		return usageError("--n counts the built-in pairs; it cannot go with --prompts or --pair")
	}
	// Check every pair before loading a model.
	tok, err := clip.Default()
	if err != nil {
		return err
	}
	for i, p := range pairs {
		if _, _, _, _, err := swapSpan(tok, p.source, p.target); err != nil {
			return usageError("pair %d (%s): %v", i+1, p.group, err)
		}
	}
	e, err := ef.load()
	if err != nil {
		return err
	}
	defer e.Close()
	drifts, err := measureDrift(ctx, e, pairs)
	if err != nil {
		return err
	}
	summary := summarizeDrift(pairs, drifts)
	if *ef.json {
		return writeDriftJSON(stdout, e.Defaults().Model, pairs, drifts, summary)
	}
	return printDrift(stdout, e.Defaults().Model, summary)
}

// driftStats summarize one token group over a swap group's pairs, every
// token counting once.
type driftStats struct {
	Tokens int     `json:"tokens"`
	Mean   float64 `json:"mean"`
	Min    float64 `json:"min"`
	sum    float64
}

func (s *driftStats) add(v []float64) {
	for _, x := range v {
		if s.Tokens == 0 || x < s.Min {
			s.Min = x
		}
		s.sum += x
		s.Tokens++
		s.Mean = s.sum / float64(s.Tokens)
	}
}

// driftSummary is one swap group's row.
type driftSummary struct {
	Group  string                 `json:"group"`
	Pairs  int                    `json:"pairs"`
	Groups map[string]*driftStats `json:"token_groups"`
}

// summarizeDrift sums the pairs by swap group, in order of first
// appearance, and then all of them together.
func summarizeDrift(pairs []driftPair, drifts []tokenDrift) []driftSummary {
	var order []string
	by := map[string]*driftSummary{}
	all := &driftSummary{Group: "all", Groups: map[string]*driftStats{}}
	for i, p := range pairs {
		s := by[p.group]
		if s == nil {
			s = &driftSummary{Group: p.group, Groups: map[string]*driftStats{}}
			by[p.group] = s
			order = append(order, p.group)
		}
		for _, sum := range []*driftSummary{s, all} {
			sum.Pairs++
			for _, g := range driftGroups {
				if sum.Groups[g] == nil {
					sum.Groups[g] = &driftStats{}
				}
				sum.Groups[g].add(drifts[i][g])
			}
		}
	}
	var out []driftSummary
	for _, g := range order {
		out = append(out, *by[g])
	}
	if len(order) > 1 {
		out = append(out, *all)
	}
	return out
}

func printDrift(w io.Writer, model string, summary []driftSummary) error {
	fmt.Fprintf(w, "Text-encoder drift, model %s: cosine similarity of the last hidden states of a prompt and its swap, position by position\n", model)
	fmt.Fprintf(w, "before: tokens before the swapped word (BOS included; exactly 1 for a causal encoder); swapped: the span of tokens that differ; "+
		"after: content tokens after it; EOS+padding: EOS and the padding to %d. Means and minimums over every token of the group.\n\n", clip.ContextLength)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "| swap\t| pairs")
	for _, g := range driftGroups {
		fmt.Fprintf(tw, "\t| %s mean\t| %s min", g, g)
	}
	fmt.Fprintln(tw, "\t|")
	for _, s := range summary {
		fmt.Fprintf(tw, "| %s\t| %d", s.Group, s.Pairs)
		for _, g := range driftGroups {
			st := s.Groups[g]
			if st.Tokens == 0 {
				fmt.Fprint(tw, "\t| –\t| –")
				continue
			}
			fmt.Fprintf(tw, "\t| %s\t| %s", fmtCos(st.Mean), fmtCos(st.Min))
		}
		fmt.Fprintln(tw, "\t|")
	}
	return tw.Flush()
}

// fmtCos prints a cosine so that 1 and a value just below it differ
// (rounding would print 0.9999996 as 1.000000).
func fmtCos(v float64) string {
	if v >= 1 {
		return "1"
	}
	return fmt.Sprintf("%.6f", math.Min(v, 0.999999))
}

// driftPairJSON is one pair's per-group means.
type driftPairJSON struct {
	Group  string             `json:"group"`
	Source string             `json:"source"`
	Target string             `json:"target"`
	Mean   map[string]float64 `json:"mean"`
	Min    map[string]float64 `json:"min"`
}

func writeDriftJSON(w io.Writer, model string, pairs []driftPair, drifts []tokenDrift, summary []driftSummary) error {
	out := struct {
		Model   string          `json:"model"`
		Summary []driftSummary  `json:"summary"`
		Pairs   []driftPairJSON `json:"pairs"`
	}{Model: model, Summary: summary}
	for i, p := range pairs {
		pj := driftPairJSON{Group: p.group, Source: p.source, Target: p.target, Mean: map[string]float64{}, Min: map[string]float64{}}
		for _, g := range driftGroups {
			var st driftStats
			st.add(drifts[i][g])
			if st.Tokens > 0 {
				pj.Mean[g], pj.Min[g] = st.Mean, st.Min
			}
		}
		out.Pairs = append(out.Pairs, pj)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
