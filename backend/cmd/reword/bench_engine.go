package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"text/tabwriter"
	"time"

	"reword/backend/diffusion"
	"reword/shared/edit"
)

func init() {
	registerBench(benchmark{name: "engine", summary: "engine step time plain vs P2P, UNet rows per edit, time to first preview, edit time, cost of the self-replace layers", run: runBenchEngine})
}

// engineConfig is one configuration bench engine times.
type engineConfig struct {
	name string
	run  func() (*diffusion.Result, error)
	// layers is, for the self-replace configurations, how many of the
	// model's self-attention layers (selfOf) the run self-replaces in.
	layers, selfOf int
}

// engineSample collects one configuration's timings over the runs.
type engineSample struct {
	perStep, first, total []time.Duration
	// cpuPerStep is the process's CPU time per step (processCPUTime),
	// which other processes on a shared machine do not inflate; empty
	// where it is not measured.
	cpuPerStep []time.Duration
	rows       float64 // UNet rows per step, averaged over the steps
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

	configs := engineConfigs(ctx, e, *steps)
	self := selfLayerConfigs(ctx, e, *steps)
	got, err := timeConfigs(ctx, append(configs, self...), *reps, *steps)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Engine benchmark, model %s, %d steps, medians of %d interleaved runs (threads %d)\n\n", e.Defaults().Model, *steps, *reps, *ef.threads)
	if err := printEngineTable(stdout, configs, got); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nUNet rows per step of an edit of one target: %g without the source cache (the reference: 4), %g with it.\n", got[2].rows, got[3].rows)
	return printSelfLayerTable(stdout, self, got[len(configs):], median(got[1].perStep))
}

// engineConfigs are the generation and edit configurations of the main
// table; the second is the reference every ratio divides by, the third and
// fourth one target without and with the source cache. The Prompt-to-Prompt
// edits run the attention control alone (norm window off); the last two,
// on a UNet that takes it, add the model's norm window (0.4 for a model
// without one), which keeps the source's unconditional row in the
// window's steps even when the source is cached.
func engineConfigs(ctx context.Context, e *diffusion.Engine, steps int) []engineConfig {
	seed := uint64(11)
	mk := func(targets ...string) edit.Spec {
		return edit.Spec{Source: "a red circle on the left", Targets: targets, Seed: &seed, Steps: &steps, Norm: &edit.Window{}}
	}
	one := mk("a blue circle on the left")
	four := mk("a blue circle on the left", "a red square on the left", "a red circle on the left on grass", "a green star on the left")
	norm := e.Defaults().Norm
	if norm.End <= norm.Start {
		norm = edit.Fraction(0.4)
	}
	normed := one.Clone()
	normed.Norm = &norm
	normName, err := json.Marshal(norm) // 0.4, or [0.2,0.6]: as a spec writes it
	if err != nil {
		panic(err) // a Window always marshals
	}
	noPreview := func(diffusion.Preview) {}
	editWith := func(s edit.Spec, opts diffusion.RunOptions) func() (*diffusion.Result, error) {
		return func() (*diffusion.Result, error) { return e.Edit(ctx, s, opts, noPreview) }
	}
	configs := []engineConfig{
		{name: "generate (1 prompt, 2 rows)", run: func() (*diffusion.Result, error) {
			return e.Generate(ctx, diffusion.GenerateRequest{Prompt: one.Source, Seed: seed, Steps: steps}, diffusion.RunOptions{NoSourceCache: true}, noPreview)
		}},
		{name: "edit E=1, no control (4 rows)", run: editWith(one, diffusion.RunOptions{NoSourceCache: true, Baseline: true})},
		{name: "edit E=1, P2P (4 rows)", run: editWith(one, diffusion.RunOptions{NoSourceCache: true})},
		{name: "edit E=1, P2P, cached source (3 rows)", run: editWith(one, diffusion.RunOptions{})},
		{name: "edit E=4, P2P (10 rows)", run: editWith(four, diffusion.RunOptions{NoSourceCache: true})},
		{name: "edit E=4, P2P, cached source (9 rows)", run: editWith(four, diffusion.RunOptions{})},
	}
	if !e.TakesNorm() {
		return configs
	}
	return append(configs,
		engineConfig{name: "edit E=1, P2P, norm " + string(normName) + " (4 rows)", run: editWith(normed, diffusion.RunOptions{NoSourceCache: true})},
		engineConfig{name: "edit E=1, P2P, norm " + string(normName) + ", cached source (4 rows in the window, 3 after)", run: editWith(normed, diffusion.RunOptions{})})
}

// selfLayerConfigs time the self-replace layers a run chooses
// (self_max_tokens): one target, no source cache, self-replace during every
// step so that the layers cost at every step, first in no layer (self 0),
// then up to each of the model's grids in turn.
func selfLayerConfigs(ctx context.Context, e *diffusion.Engine, steps int) []engineConfig {
	seed := uint64(11)
	d := e.Defaults()
	_, of, _ := d.SelfLayersWithin(0)
	spec := func(self float64, maxTokens *int) edit.Spec {
		return edit.Spec{Source: "a red circle on the left", Targets: []string{"a blue circle on the left"}, Seed: &seed, Steps: &steps,
			Self: &edit.Window{End: self}, SelfMaxTokens: maxTokens}
	}
	run := func(s edit.Spec) func() (*diffusion.Result, error) {
		return func() (*diffusion.Result, error) {
			return e.Edit(ctx, s, diffusion.RunOptions{NoSourceCache: true}, func(diffusion.Preview) {})
		}
	}
	out := []engineConfig{{name: "self 0: no layer", run: run(spec(0, nil)), layers: 0, selfOf: of}}
	for _, g := range d.SelfLayers {
		n := g.Tokens()
		layers, _, words := d.SelfLayersWithin(n)
		out = append(out, engineConfig{name: fmt.Sprintf("self 1, self_max_tokens %d: %s", n, words), run: run(spec(1, &n)), layers: layers, selfOf: of})
	}
	return out
}

// timeConfigs runs every configuration once to warm up (ONNX Runtime
// allocates its arenas, the cached configurations fill the source cache),
// then reps times, interleaved so that a slow spell of a shared machine
// slows every configuration alike.
func timeConfigs(ctx context.Context, configs []engineConfig, reps, steps int) ([]engineSample, error) {
	for _, c := range configs {
		if _, err := c.run(); err != nil {
			return nil, fmt.Errorf("%s: %w", c.name, err)
		}
	}
	got := make([]engineSample, len(configs))
	for r := 0; r < reps; r++ {
		for i, c := range configs {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			cpu0 := processCPUTime()
			res, err := c.run()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", c.name, err)
			}
			if cpu := processCPUTime() - cpu0; cpu0 > 0 {
				got[i].cpuPerStep = append(got[i].cpuPerStep, cpu/time.Duration(steps))
			}
			got[i].perStep = append(got[i].perStep, res.Timings.PerStep())
			got[i].first = append(got[i].first, res.Timings.FirstPreview)
			got[i].total = append(got[i].total, res.Timings.Total)
			got[i].rows = float64(res.UNetRows) / float64(steps)
		}
	}
	return got, nil
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(a, b int) bool { return s[a] < s[b] })
	return s[len(s)/2]
}

// printEngineTable prints the main table, every time per step divided by
// the second configuration's (one target, no control).
func printEngineTable(w io.Writer, configs []engineConfig, got []engineSample) error {
	plain := median(got[1].perStep)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "| configuration\t| UNet rows/step\t| time/step\t| ÷ E=1 no control\t| first preview\t| ÷ time/step\t| end to end\t|")
	for i, c := range configs {
		ps, fp := median(got[i].perStep), median(got[i].first)
		fmt.Fprintf(tw, "| %s\t| %g\t| %v\t| %.2f\t| %v\t| %.2f\t| %v\t|\n", c.name, got[i].rows, ps.Round(10*time.Microsecond),
			float64(ps)/float64(plain), fp.Round(10*time.Microsecond), float64(fp)/float64(ps), median(got[i].total).Round(time.Millisecond))
	}
	return tw.Flush()
}

// printSelfLayerTable prints the cost of the self-replace layers: each
// configuration's CPU and wall-clock time per step divided by the first's
// (no layer), and its time per step by the main table's E=1 no control
// (plain). The CPU ratio is the steadier reading on a shared machine.
func printSelfLayerTable(w io.Writer, configs []engineConfig, got []engineSample, plain time.Duration) error {
	if len(configs) < 2 {
		fmt.Fprintln(w, "\nThe model lists no self-attention layers: no self-replace cost to measure.")
		return nil
	}
	fmt.Fprintln(w, "\nSelf-replace layers (self_max_tokens), edit E=1, P2P, no source cache, self-replace during every step "+
		"(CPU: the process's, every thread, which other processes do not inflate):")
	off, offCPU := median(got[0].perStep), medianOrZero(got[0].cpuPerStep)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "| configuration\t| layers\t| CPU/step\t| ÷ self 0, CPU\t| time/step\t| ÷ self 0\t| ÷ E=1 no control\t|")
	for i, c := range configs {
		ps, cpu := median(got[i].perStep), medianOrZero(got[i].cpuPerStep)
		cpuCells := "–\t| –"
		if offCPU > 0 {
			cpuCells = fmt.Sprintf("%v\t| %.3f", cpu.Round(10*time.Microsecond), float64(cpu)/float64(offCPU))
		}
		fmt.Fprintf(tw, "| %s\t| %d of %d\t| %s\t| %v\t| %.3f\t| %.2f\t|\n", c.name, c.layers, c.selfOf, cpuCells, ps.Round(10*time.Microsecond),
			float64(ps)/float64(off), float64(ps)/float64(plain))
	}
	return tw.Flush()
}

// medianOrZero is median, or 0 for no samples.
func medianOrZero(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return median(d)
}
