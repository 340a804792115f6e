package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"reword/backend/graph"
	"reword/backend/graph/modelfile"
	"reword/backend/ort"
)

func init() {
	registerBench(benchmark{
		name:    "instrument",
		summary: "instrumented/original UNet step time on the tiny model, and where the added time goes",
		run:     runBenchInstrument,
	})
}

func runBenchInstrument(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench instrument", "", stderr)
	modelDir := fs.String("model", defaultPath("models/tiny"), "model folder (diffusers layout)")
	unetDirs := fs.String("unets", "unet,unet_sdpa", "comma-separated UNet subfolders of the model folder to measure (each holds model.onnx)")
	targets := fs.Int("targets", 1, "edit targets E; the batch is 2(1+E)")
	reps := fs.Int("reps", 40, "timed runs of each model, interleaved")
	threads := fs.Int("threads", 1, "ONNX Runtime intra-op threads (0: one per core)")
	profileRuns := fs.Int("profile-runs", 20, "runs of each model under ONNX Runtime's profiler (0: skip profiling)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError("unexpected arguments %v", fs.Args())
	}
	if *targets < 0 || *reps < 3 || *threads < 0 || *profileRuns < 0 {
		return usageError("need -targets ≥ 0, -reps ≥ 3, -threads ≥ 0, -profile-runs ≥ 0")
	}
	fmt.Fprintf(stdout, "UNet step time, instrumented (no-op controls) / original, batch %d (E=%d), %d thread(s), %d interleaved runs each, ONNX Runtime %s\n\n",
		graph.Batch(*targets), *targets, *threads, *reps, ort.RuntimeVersion())
	for _, sub := range strings.Split(*unetDirs, ",") {
		if err := ctx.Err(); err != nil {
			return err
		}
		b := &instrumentBench{src: filepath.Join(*modelDir, strings.TrimSpace(sub), graph.OriginalFile),
			targets: *targets, reps: *reps, threads: *threads, profileRuns: *profileRuns}
		if err := b.run(ctx, stdout); err != nil {
			return fmt.Errorf("%s: %w", b.src, err)
		}
	}
	return nil
}

// instrumentBench measures one UNet export.
type instrumentBench struct {
	src                           string
	targets, reps, threads        int
	profileRuns                   int
	desc                          *graph.Description
	origPath, instPath, profileIn string
}

func (b *instrumentBench) run(ctx context.Context, w io.Writer) error {
	tmp, err := os.MkdirTemp("", "reword-bench-instrument-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := b.instrument(tmp); err != nil {
		return err
	}
	b.profileIn = tmp
	feeds, err := b.feeds()
	if err != nil {
		return err
	}
	defer func() {
		for _, v := range feeds {
			v.Destroy()
		}
	}()
	orig, inst, err := b.sessions("")
	if err != nil {
		return err
	}
	origTimes, instTimes, ratios, err := b.time(ctx, orig, inst, feeds)
	orig.Close()
	inst.Close()
	if err != nil {
		return err
	}
	cross, _ := b.desc.Count(graph.Cross)
	_, selfEdited := b.desc.Count(graph.Self)
	fmt.Fprintf(w, "%s (%d cross layers edited, %d self layers with self-replace chosen per run, maps %s; neutral controls)\n", b.src, cross, selfEdited, describeMapsOutputs(b.desc))
	fmt.Fprintf(w, "  original      median %7.2f ms  (min %.2f)\n", toMillis(medianDuration(origTimes)), toMillis(shortestDuration(origTimes)))
	fmt.Fprintf(w, "  instrumented  median %7.2f ms  (min %.2f)\n", toMillis(medianDuration(instTimes)), toMillis(shortestDuration(instTimes)))
	sort.Float64s(ratios)
	fmt.Fprintf(w, "  ratio instrumented/original: median %.3f (per interleaved pair; quartiles %.3f–%.3f; ratio of minima %.3f)\n",
		ratios[len(ratios)/2], ratios[len(ratios)/4], ratios[3*len(ratios)/4], float64(shortestDuration(instTimes))/float64(shortestDuration(origTimes)))
	if b.profileRuns > 0 {
		if err := b.profile(ctx, w, feeds); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	return nil
}

// instrument writes the instrumented copy into tmp when the model keeps its
// weights inside model.onnx; with external weight files it must sit next to
// the original, as `reword instrument` writes it.
func (b *instrumentBench) instrument(tmp string) error {
	m, err := modelfile.Read(b.src)
	if err != nil {
		return err
	}
	b.origPath = b.src
	dst := filepath.Join(tmp, graph.InstrumentedFile)
	if m.HasExternalData() {
		dst = filepath.Join(filepath.Dir(b.src), graph.InstrumentedFile)
	}
	if b.desc, err = graph.Instrument(m.Proto, graph.Options{}); err != nil {
		return err
	}
	b.instPath = dst
	return m.Write(dst)
}

// feeds are random UNet inputs at batch 2(1+E) and no-op controls.
func (b *instrumentBench) feeds() (map[string]ort.Value, error) {
	d := b.desc
	batch := int64(graph.Batch(b.targets))
	s, err := ort.NewSession(b.origPath, ort.Options{Threads: 1})
	if err != nil {
		return nil, err
	}
	ctxInfo, _ := s.Input(graph.HiddenStatesInput)
	sampleInfo, _ := s.Input(graph.SampleInput)
	s.Close()
	if len(ctxInfo.Shape) != 3 || ctxInfo.Shape[2] <= 0 || len(sampleInfo.Shape) != 4 || sampleInfo.Shape[1] <= 0 {
		return nil, fmt.Errorf("need fixed channel counts for %s %v and %s %v", graph.SampleInput, sampleInfo.Shape, graph.HiddenStatesInput, ctxInfo.Shape)
	}
	tokens := int64(d.Tokens)
	if tokens == 0 {
		tokens = 77
	}
	r := rand.New(rand.NewSource(1))
	normal := func(n int64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		return v
	}
	feeds := map[string]ort.Value{}
	add := func(name string, v ort.Value, err error) error {
		if err != nil {
			return fmt.Errorf("input %s: %w", name, err)
		}
		feeds[name] = v
		return nil
	}
	sampleShape := []int64{batch, sampleInfo.Shape[1], int64(d.Latent.Height), int64(d.Latent.Width)}
	ctxShape := []int64{batch, tokens, ctxInfo.Shape[2]}
	if d.SampleType != "float32" || d.HiddenStatesType != "float32" {
		return nil, fmt.Errorf("the benchmark feeds float32 sample and encoder_hidden_states; this model takes %s and %s", d.SampleType, d.HiddenStatesType)
	}
	v, err := ort.NewTensor(sampleShape, normal(sampleShape[0]*sampleShape[1]*sampleShape[2]*sampleShape[3]))
	if err := add(graph.SampleInput, v, err); err != nil {
		return nil, err
	}
	h, err := ort.NewTensor(ctxShape, normal(ctxShape[0]*ctxShape[1]*ctxShape[2]))
	if err := add(graph.HiddenStatesInput, h, err); err != nil {
		return nil, err
	}
	switch d.TimestepType {
	case "float32":
		t, err := ort.NewTensor([]int64{batch}, repeatValue(float32(501), batch))
		if err := add(graph.TimestepInput, t, err); err != nil {
			return nil, err
		}
	case "int64":
		t, err := ort.NewTensor([]int64{batch}, repeatValue(int64(501), batch))
		if err := add(graph.TimestepInput, t, err); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("timestep type %s is not supported by the benchmark", d.TimestepType)
	}
	ctl := graph.NoOpControls(b.targets, int(tokens))
	ws, cs, ss := ctl.Shapes()
	layers := d.SelfLayerWeights(d.SelfReplaceMaxQueries)
	for name, c := range map[string]struct {
		shape []int64
		data  []float32
	}{graph.CrossWeightsInput: {ws, ctl.CrossW}, graph.CrossKeepInput: {cs, ctl.CrossC}, graph.SelfWeightInput: {ss, ctl.SelfW},
		graph.SelfLayersInput: {[]int64{int64(len(layers))}, layers}} {
		t, err := ort.NewTensor(c.shape, c.data)
		if err := add(name, t, err); err != nil {
			return nil, err
		}
	}
	return feeds, nil
}

func repeatValue[T any](v T, n int64) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// sessions opens the original and the instrumented model, with profiling
// into files starting with profilePrefix when it is set.
func (b *instrumentBench) sessions(profilePrefix string) (orig, inst *ort.Session, err error) {
	opts := ort.Options{Threads: b.threads}
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

// only keeps the feeds a session takes.
func feedsFor(s *ort.Session, feeds map[string]ort.Value) map[string]ort.Value {
	out := map[string]ort.Value{}
	for _, in := range s.InputInfo() {
		out[in.Name] = feeds[in.Name]
	}
	return out
}

func runUNetOnce(ctx context.Context, s *ort.Session, feeds map[string]ort.Value) (time.Duration, error) {
	start := time.Now()
	outs, err := s.RunContext(ctx, feeds)
	d := time.Since(start)
	if err != nil {
		return 0, err
	}
	outs.Destroy()
	return d, nil
}

// time runs both models alternately (which one goes first alternates too),
// after warm-up runs, and returns their times and the per-pair ratios.
func (b *instrumentBench) time(ctx context.Context, orig, inst *ort.Session, feeds map[string]ort.Value) (o, in []time.Duration, ratios []float64, err error) {
	of, inf := feedsFor(orig, feeds), feedsFor(inst, feeds)
	for i := 0; i < 3; i++ {
		if _, err := runUNetOnce(ctx, orig, of); err != nil {
			return nil, nil, nil, err
		}
		if _, err := runUNetOnce(ctx, inst, inf); err != nil {
			return nil, nil, nil, err
		}
	}
	for i := 0; i < b.reps; i++ {
		var to, ti time.Duration
		if i%2 == 0 {
			if to, err = runUNetOnce(ctx, orig, of); err == nil {
				ti, err = runUNetOnce(ctx, inst, inf)
			}
		} else {
			if ti, err = runUNetOnce(ctx, inst, inf); err == nil {
				to, err = runUNetOnce(ctx, orig, of)
			}
		}
		if err != nil {
			return nil, nil, nil, err
		}
		o, in = append(o, to), append(in, ti)
		ratios = append(ratios, float64(ti)/float64(to))
	}
	return o, in, ratios, nil
}

// profile runs both models under ONNX Runtime's profiler and reports the
// kernel time of the inserted nodes by op type and by part of the edit.
func (b *instrumentBench) profile(ctx context.Context, w io.Writer, feeds map[string]ort.Value) error {
	prefix := filepath.Join(b.profileIn, "profile_")
	orig, inst, err := b.sessions(prefix)
	if err != nil {
		return err
	}
	for i := 0; i < b.profileRuns; i++ {
		if _, err = runUNetOnce(ctx, orig, feedsFor(orig, feeds)); err != nil {
			break
		}
		if _, err = runUNetOnce(ctx, inst, feedsFor(inst, feeds)); err != nil {
			break
		}
	}
	orig.Close()
	inst.Close()
	if err != nil {
		return err
	}
	po, err := readORTProfile(prefix+"orig", b.desc)
	if err != nil {
		return err
	}
	pi, err := readORTProfile(prefix+"inst", b.desc)
	if err != nil {
		return err
	}
	per := func(us int64, p *ortProfile) float64 { return float64(us) / 1000 / float64(p.runs) }
	fmt.Fprintf(w, "  ONNX Runtime profiler, %d runs each (kernel time, ms/run): original %.2f, instrumented %.2f (ratio %.3f), of which inserted nodes %.2f (%d nodes)\n",
		b.profileRuns, per(po.total, po), per(pi.total, pi), per(pi.total, pi)/per(po.total, po), per(pi.inserted, pi), pi.insertedNodes)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "    inserted op\tms/run\tnodes\t")
	for _, op := range sortedProfileKeys(pi.byOp) {
		fmt.Fprintf(tw, "    %s\t%.3f\t%d\t\n", op, per(pi.byOp[op], pi), pi.nodesByOp[op])
	}
	tw.Flush()
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "    part of the edit\tms/run\t")
	for _, part := range sortedProfileKeys(pi.byPart) {
		fmt.Fprintf(tw, "    %s\t%.3f\t\n", part, per(pi.byPart[part], pi))
	}
	tw.Flush()
	return nil
}

// ortProfile sums an ONNX Runtime profile.
type ortProfile struct {
	runs          int
	total         int64 // µs of all node kernels
	inserted      int64 // µs of nodes the instrumentation added
	insertedNodes int
	byOp          map[string]int64
	nodesByOp     map[string]int
	byPart        map[string]int64
}

func readORTProfile(prefix string, desc *graph.Description) (*ortProfile, error) {
	files, err := filepath.Glob(prefix + "*.json")
	if err != nil || len(files) != 1 {
		return nil, fmt.Errorf("expected one ONNX Runtime profile %s*.json, found %d (%v)", prefix, len(files), err)
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		return nil, err
	}
	var events []struct {
		Cat  string `json:"cat"`
		Name string `json:"name"`
		Dur  int64  `json:"dur"`
		Args struct {
			Op string `json:"op_name"`
		} `json:"args"`
	}
	if err := json.Unmarshal(raw, &events); err != nil {
		return nil, fmt.Errorf("reading profile %s: %w", files[0], err)
	}
	kinds := map[string]graph.Kind{}
	for _, l := range desc.Layers {
		kinds[l.Name] = l.Kind
	}
	p := &ortProfile{byOp: map[string]int64{}, nodesByOp: map[string]int{}, byPart: map[string]int64{}}
	seen := map[string]bool{}
	for _, e := range events {
		if e.Cat == "Session" && e.Name == "model_run" {
			p.runs++
		}
		if e.Cat != "Node" || !strings.HasSuffix(e.Name, "_kernel_time") {
			continue
		}
		p.total += e.Dur
		node := strings.TrimSuffix(e.Name, "_kernel_time")
		i := strings.Index(node, graph.NodeMarker)
		if i < 0 {
			continue
		}
		p.inserted += e.Dur
		p.byOp[e.Args.Op] += e.Dur
		if !seen[node] {
			seen[node] = true
			p.insertedNodes++
			p.nodesByOp[e.Args.Op]++
		}
		switch layer := node[:i]; {
		case layer == "":
			p.byPart["prelude and maps output"] += e.Dur
		case kinds[layer] == graph.Self:
			p.byPart["self-replace layers"] += e.Dur
		default:
			p.byPart["cross-attention layers (edit and head means)"] += e.Dur
		}
	}
	if p.runs == 0 {
		return nil, fmt.Errorf("profile %s has no model runs", files[0])
	}
	return p, nil
}

func sortedProfileKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func describeMapsOutputs(d *graph.Description) string {
	var names []string
	for _, m := range d.Maps {
		names = append(names, fmt.Sprintf("%s from %d layers", m.Name, len(m.Layers)))
	}
	return strings.Join(names, ", ")
}

func medianDuration(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func shortestDuration(d []time.Duration) time.Duration {
	m := d[0]
	for _, x := range d[1:] {
		if x < m {
			m = x
		}
	}
	return m
}

func toMillis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
