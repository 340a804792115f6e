package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	"reword/backend/diffusion"
	"reword/shared/edit"
)

func init() {
	registerBench(benchmark{name: "engine", summary: "engine step time plain vs P2P, UNet rows per edit, time to first preview, edit time", run: runBenchEngine})
}

func runBenchEngine(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench engine", "", stderr)
	ef := addEngineFlags(fs)
	reps := fs.Int("reps", 5, "runs of each configuration, interleaved")
	steps := fs.Int("steps", 50, "diffusion steps per run")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *reps < 1 || *steps < 1 {
		return usageError("want no arguments, --reps ≥ 1 and --steps ≥ 1")
	}
	e, err := ef.load()
	if err != nil {
		return err
	}
	defer e.Close()

	seed := uint64(11)
	mk := func(targets ...string) edit.Spec {
		return edit.Spec{Source: "a red circle on the left", Targets: targets, Seed: &seed, Steps: steps}
	}
	one := mk("a blue circle on the left")
	four := mk("a blue circle on the left", "a red square on the left", "a red circle on the left on grass", "a green star on the left")

	type config struct {
		name string
		run  func() (*diffusion.Result, error)
	}
	noPreview := func(diffusion.Preview) {}
	configs := []config{
		{"generate (1 prompt, 2 rows)", func() (*diffusion.Result, error) {
			return e.Generate(ctx, diffusion.GenerateRequest{Prompt: one.Source, Seed: seed, Steps: *steps}, diffusion.RunOptions{NoSourceCache: true}, noPreview)
		}},
		{"edit E=1, no control (4 rows)", func() (*diffusion.Result, error) {
			return e.Edit(ctx, one, diffusion.RunOptions{NoSourceCache: true, Baseline: true}, noPreview)
		}},
		{"edit E=1, P2P (4 rows)", func() (*diffusion.Result, error) {
			return e.Edit(ctx, one, diffusion.RunOptions{NoSourceCache: true}, noPreview)
		}},
		{"edit E=1, P2P, cached source (3 rows)", func() (*diffusion.Result, error) {
			return e.Edit(ctx, one, diffusion.RunOptions{}, noPreview)
		}},
		{"edit E=4, P2P (10 rows)", func() (*diffusion.Result, error) {
			return e.Edit(ctx, four, diffusion.RunOptions{NoSourceCache: true}, noPreview)
		}},
		{"edit E=4, P2P, cached source (9 rows)", func() (*diffusion.Result, error) {
			return e.Edit(ctx, four, diffusion.RunOptions{}, noPreview)
		}},
	}
	// Warm up (first runs allocate ONNX Runtime's arenas) and fill the
	// source cache for the cached configurations.
	for _, c := range configs {
		if _, err := c.run(); err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
	}
	type sample struct{ perStep, first, total []time.Duration }
	got := make([]sample, len(configs))
	rows := make([]int, len(configs))
	for r := 0; r < *reps; r++ {
		for i, c := range configs {
			if err := ctx.Err(); err != nil {
				return err
			}
			res, err := c.run()
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			got[i].perStep = append(got[i].perStep, res.Timings.PerStep())
			got[i].first = append(got[i].first, res.Timings.FirstPreview)
			got[i].total = append(got[i].total, res.Timings.Total)
			rows[i] = res.UNetRows / *steps
		}
	}
	median := func(d []time.Duration) time.Duration {
		s := append([]time.Duration(nil), d...)
		sort.Slice(s, func(a, b int) bool { return s[a] < s[b] })
		return s[len(s)/2]
	}
	plain := median(got[1].perStep)
	fmt.Fprintf(stdout, "Engine benchmark, model %s, %d steps, medians of %d interleaved runs (threads %d)\n\n", e.Defaults().Model, *steps, *reps, *ef.threads)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "| configuration\t| UNet rows/step\t| time/step\t| ÷ E=1 no control\t| first preview\t| ÷ time/step\t| end to end\t|")
	for i, c := range configs {
		ps, fp := median(got[i].perStep), median(got[i].first)
		fmt.Fprintf(tw, "| %s\t| %d\t| %v\t| %.2f\t| %v\t| %.2f\t| %v\t|\n", c.name, rows[i], ps.Round(10*time.Microsecond),
			float64(ps)/float64(plain), fp.Round(10*time.Microsecond), float64(fp)/float64(ps), median(got[i].total).Round(time.Millisecond))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nUNet rows per edit of one target: %d without the source cache (the reference: 4), %d with it.\n", rows[2], rows[3])
	return nil
}
