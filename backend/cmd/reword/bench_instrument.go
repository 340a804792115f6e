package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"reword/backend/graph"
	"reword/backend/graph/modelfile"
	"reword/backend/ort"
)

func init() {
	registerBench(benchmark{
		name:    "instrument",
		summary: "instrumented/original UNet run time and peak memory on the tiny model, and where the added time goes",
		run:     runBenchInstrument,
	})
}

func runBenchInstrument(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench instrument", "", stderr)
	modelDir := fs.String("model", defaultPath("models/tiny"), "model folder (diffusers layout)")
	unetDirs := fs.String("unets", "unet,unet_sdpa", "comma-separated UNet subfolders of the model folder to measure (each holds model.onnx)")
	targets := fs.Int("targets", 1, "edit targets E; the batch is 2(1+E)")
	reps := fs.Int("reps", 40, "timed runs of each model, interleaved")
	threads := fs.Int("threads", 1, "ONNX Runtime intra-op threads (0: one per core); with 1 the CPU time of each run is measured too")
	profileRuns := fs.Int("profile-runs", 20, "runs of each model under ONNX Runtime's profiler (0: skip profiling; with -separate, any other number profiles the timed runs of each model's first process)")
	controls := fs.String("controls", neutralControls+","+editControls, "controls to time the instrumented model with: neutral (W = 0, c = 1, s = 0: the output is the original's), edit (random W and c, s = 1 on the default self-replace layers), norm (edit, and g = 1: the source's GroupNorm means, a norm window's steps)")
	memoryRuns := fs.Int("memory-runs", 2, "runs of each model in a process of its own, whose peak resident set size is reported (0: skip)")
	separate := fs.Bool("separate", false, "time each model in processes of its own (-reps runs after two warm-up runs), never two models loaded at once: for UNets too large for that, at the price of no interleaving")
	processes := fs.Int("processes", 1, "with -separate: processes per model, run in rounds (original, then instrumented per controls)")
	arena := fs.Bool("arena", true, "time with ONNX Runtime's CPU memory arena, as the engine runs (false: each tensor allocated and freed on its own; its page faults then count in every run)")
	maps := fs.String("maps", mapsNone, "attention-map outputs the instrumented model computes: none (plain generation), heat (the one the editor's heat maps read) or all")
	memPattern := fs.Bool("mem-pattern", true, "ONNX Runtime's memory pattern (false: the arena holds one run's memory instead of that and a planned block, for models that would not fit otherwise)")
	child := fs.String("child", "", "internal: the measurement a child process makes (JSON)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *child != "" {
		var c benchChild
		if err := json.Unmarshal([]byte(*child), &c); err != nil {
			return usageError("-child: %v", err)
		}
		return c.run(ctx, os.Stdout)
	}
	if fs.NArg() != 0 {
		return usageError("unexpected arguments %v", fs.Args())
	}
	if *targets < 0 || *reps < 3 || *threads < 0 || *profileRuns < 0 || *memoryRuns < 0 || *processes < 1 {
		return usageError("need -targets ≥ 0, -reps ≥ 3, -threads ≥ 0, -profile-runs ≥ 0, -memory-runs ≥ 0, -processes ≥ 1")
	}
	kinds, err := parseControlKinds(*controls)
	if err != nil {
		return err
	}
	if err := checkMapsChoice(*maps); err != nil {
		return err
	}
	pattern := ""
	if !*arena {
		pattern += ", CPU memory arena off"
	}
	if !*memPattern {
		pattern += ", memory pattern off"
	}
	fmt.Fprintf(stdout, "UNet run time, instrumented / original, batch %d (E=%d), %d thread(s), %d runs each, attention maps asked: %s, ONNX Runtime %s%s\n\n",
		graph.Batch(*targets), *targets, *threads, *reps, *maps, ort.RuntimeVersion(), pattern)
	for _, sub := range strings.Split(*unetDirs, ",") {
		if err := ctx.Err(); err != nil {
			return err
		}
		b := &instrumentBench{src: filepath.Join(*modelDir, strings.TrimSpace(sub), graph.OriginalFile), controls: kinds,
			targets: *targets, maps: *maps, reps: *reps, threads: *threads, profileRuns: *profileRuns, memoryRuns: *memoryRuns,
			separate: *separate, processes: *processes, arena: *arena, memPattern: *memPattern}
		if err := b.run(ctx, stdout); err != nil {
			return fmt.Errorf("%s: %w", b.src, err)
		}
	}
	return nil
}

func parseControlKinds(s string) ([]string, error) {
	var kinds []string
	for _, k := range strings.Split(s, ",") {
		switch k = strings.TrimSpace(k); k {
		case neutralControls, editControls, normControls:
			kinds = append(kinds, k)
		default:
			return nil, usageError("-controls: unknown controls %q (use %s, %s, %s, or several, comma-separated)", k, neutralControls, editControls, normControls)
		}
	}
	return kinds, nil
}

// instrumentBench measures one UNet export.
type instrumentBench struct {
	src                    string
	controls               []string
	maps                   string
	targets, reps, threads int
	profileRuns            int
	memoryRuns             int
	separate               bool
	processes              int
	arena, memPattern      bool

	desc               *graph.Description
	origPath, instPath string
	origIn, instIn     []benchInput
	feeds              *benchFeeds
	tmp                string
}

func (b *instrumentBench) run(ctx context.Context, w io.Writer) error {
	tmp, err := os.MkdirTemp("", "reword-bench-instrument-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	b.tmp = tmp
	if err := b.instrument(); err != nil {
		return err
	}
	if b.instPath != filepath.Join(tmp, graph.InstrumentedFile) {
		defer os.Remove(b.instPath)
	}
	cross, _ := b.desc.Count(graph.Cross)
	_, selfEdited := b.desc.Count(graph.Self)
	fmt.Fprintf(w, "%s (%d cross layers edited, %d self layers with self-replace chosen per run, %d GroupNorms with the norm control, maps %s)\n",
		b.src, cross, selfEdited, b.desc.NormLayers, describeMapsOutputs(b.desc))
	if b.separate {
		err = b.timeSeparately(ctx, w)
	} else {
		err = b.timeTogether(ctx, w)
	}
	if err != nil {
		return err
	}
	if b.memoryRuns > 0 && !b.separate {
		if err := b.memory(ctx, w, true); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	return nil
}

// benchInstrumentedFile is the instrumented copy's name when it must sit
// beside the original: never the engine's model.p2p.onnx, which the
// benchmark leaves as it was.
const benchInstrumentedFile = "model.p2p.bench.onnx"

// instrument writes the instrumented copy into b.tmp when the model keeps
// its weights inside model.onnx; with external weight files it must sit next
// to the original, where they resolve (and is removed after).
func (b *instrumentBench) instrument() error {
	m, err := modelfile.Read(b.src)
	if err != nil {
		return err
	}
	if b.origIn, err = graphInputs(m.Proto.GetGraph()); err != nil {
		return err
	}
	b.origPath = b.src
	dst := filepath.Join(b.tmp, graph.InstrumentedFile)
	if m.HasExternalData() {
		dst = filepath.Join(filepath.Dir(b.src), benchInstrumentedFile)
	}
	if b.desc, err = graph.Instrument(m.Proto, graph.Options{}); err != nil {
		return err
	}
	if b.instIn, err = graphInputs(m.Proto.GetGraph()); err != nil {
		return err
	}
	b.feeds = newBenchFeeds(b.desc, b.targets, b.maps)
	b.instPath = dst
	return m.Write(dst)
}

// sessions opens the original and the instrumented model, with profiling
// into files starting with profilePrefix when it is set.
func (b *instrumentBench) sessions(profilePrefix string) (orig, inst *ort.Session, err error) {
	opts := ort.Options{Threads: b.threads, DisableCPUArena: !b.arena, DisableMemPattern: !b.memPattern}
	if profilePrefix != "" {
		opts.ProfilePrefix = profilePrefix + "orig"
	}
	if orig, err = ort.NewSession(b.origPath, opts); err != nil {
		return nil, nil, err
	}
	if profilePrefix != "" {
		opts.ProfilePrefix = profilePrefix + "inst"
	}
	if inst, err = ort.NewSession(b.instPath, opts); err != nil {
		orig.Close()
		return nil, nil, err
	}
	return orig, inst, nil
}

// cpuValid says whether a run's thread CPU time is its compute: with one
// intra-op thread ONNX Runtime runs the graph on the calling thread.
func (b *instrumentBench) cpuValid() bool { return b.threads == 1 && threadCPUTime() > 0 }

// timeTogether loads both models in this process and times them in
// interleaved pairs (which goes first alternates), after warm-up pairs, for
// each kind of controls; the per-pair ratios cancel most of the load that
// other processes put on a shared machine. The profile, if asked for, runs
// after with sessions of its own, the timing sessions closed, so that no
// more than two models are loaded at once.
func (b *instrumentBench) timeTogether(ctx context.Context, w io.Writer) error {
	feeds := map[string]map[string]ort.Value{}
	defer func() {
		for _, f := range feeds {
			destroyValues(f)
		}
	}()
	var err error
	if feeds[""], err = b.feeds.forSession(b.origIn, neutralControls); err != nil {
		return err
	}
	for _, kind := range b.controls {
		if feeds[kind], err = b.feeds.forSession(b.instIn, kind); err != nil {
			return err
		}
	}
	if err := b.pairsPerKind(ctx, w, feeds); err != nil {
		return err
	}
	for _, kind := range b.controls {
		if b.profileRuns > 0 {
			fmt.Fprintf(w, "  %s controls, profile:\n", kind)
			if err := b.profile(ctx, w, kind, feeds[""], feeds[kind]); err != nil {
				return err
			}
		}
	}
	return nil
}

// pairsPerKind times the interleaved pairs of each kind of controls with
// one pair of sessions; feeds[""] are the original's.
func (b *instrumentBench) pairsPerKind(ctx context.Context, w io.Writer, feeds map[string]map[string]ort.Value) error {
	orig, inst, err := b.sessions("")
	if err != nil {
		return err
	}
	defer orig.Close()
	defer inst.Close()
	for _, kind := range b.controls {
		o, in, err := b.pairs(ctx, orig, inst, feeds[""], feeds[kind])
		if err != nil {
			return err
		}
		b.report(w, kind, fmt.Sprintf("%d interleaved pairs", b.reps), o, in, true)
	}
	return nil
}

// runTimes are the wall-clock and thread CPU times of a model's runs.
type runTimes struct{ wall, cpu []time.Duration }

func (b *instrumentBench) pairs(ctx context.Context, orig, inst *ort.Session, of, inf map[string]ort.Value) (o, in runTimes, err error) {
	once := func(s *ort.Session, f map[string]ort.Value, t *runTimes) error {
		wall, cpu, err := runUNetOnce(ctx, s, f)
		if t != nil {
			t.wall, t.cpu = append(t.wall, wall), append(t.cpu, cpu)
		}
		return err
	}
	for i := 0; i < 3+b.reps && err == nil; i++ {
		ot, it := &o, &in
		if i < 3 {
			ot, it = nil, nil // warm-up
		}
		if i%2 == 0 {
			if err = once(orig, of, ot); err == nil {
				err = once(inst, inf, it)
			}
		} else if err = once(inst, inf, it); err == nil {
			err = once(orig, of, ot)
		}
	}
	return o, in, err
}

// report prints the times of both models under one kind of controls and
// their ratio: per pair when paired, else of the medians.
func (b *instrumentBench) report(w io.Writer, kind, how string, o, in runTimes, paired bool) {
	fmt.Fprintf(w, "  %s controls, %s:\n", kind, how)
	clocks := []struct {
		name   string
		o, in  []time.Duration
		usable bool
	}{{"CPU time", o.cpu, in.cpu, b.cpuValid()}, {"wall clock", o.wall, in.wall, true}}
	for _, c := range clocks {
		if !c.usable {
			continue
		}
		oq, iq := quartiles(durationsMs(c.o)), quartiles(durationsMs(c.in))
		fmt.Fprintf(w, "    %-10s  original %8.2f ms (quartiles %.2f–%.2f), instrumented %8.2f ms (%.2f–%.2f)\n",
			c.name, oq[1], oq[0], oq[2], iq[1], iq[0], iq[2])
		if paired {
			r := make([]float64, len(c.o))
			for i := range r {
				r[i] = float64(c.in[i]) / float64(c.o[i])
			}
			q := quartiles(r)
			fmt.Fprintf(w, "    %-10s  ratio instrumented/original: median %.3f per pair (quartiles %.3f–%.3f)\n", c.name, q[1], q[0], q[2])
		} else {
			fmt.Fprintf(w, "    %-10s  ratio instrumented/original: %.3f (of the medians)\n", c.name, iq[1]/oq[1])
		}
	}
}

func durationsMs(d []time.Duration) []float64 {
	out := make([]float64, len(d))
	for i, x := range d {
		out[i] = float64(x) / float64(time.Millisecond)
	}
	return out
}

// quartiles returns the first quartile, the median and the third quartile
// (the values at ranks n/4, n/2 and 3n/4 of the sorted values).
func quartiles(v []float64) [3]float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return [3]float64{s[len(s)/4], s[len(s)/2], s[3*len(s)/4]}
}

func describeMapsOutputs(d *graph.Description) string {
	var names []string
	for _, m := range d.Maps {
		names = append(names, fmt.Sprintf("%s from %d layers", m.Name, len(m.Layers)))
	}
	return strings.Join(names, ", ")
}
