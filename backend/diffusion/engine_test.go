package diffusion

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"reword/backend/graph"
	"reword/backend/graph/modelfile"
	"reword/models/tiny/tinytest"
	"reword/shared/edit"
)

// tinyModel is a private copy of the tiny model's folder (Load writes the
// instrumented UNet into it). The tests run on the real files through real
// ONNX Runtime.
var (
	tinyOnce sync.Once
	tinyDir  string
	tinyErr  error
)

func loadTiny(t testing.TB, opts Options) *Engine {
	t.Helper()
	tinyOnce.Do(func() {
		tinyDir, tinyErr = os.MkdirTemp("", "reword-tiny-")
		if tinyErr == nil {
			tinyErr = tinytest.Copy(tinytest.Dir(t), tinyDir)
		}
	})
	if tinyErr != nil {
		t.Fatalf("preparing the tiny model: %v", tinyErr)
	}
	opts.Instrument = true
	if opts.Threads == 0 {
		opts.Threads = 1
	}
	e, err := Load(tinyDir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func TestMain(m *testing.M) {
	code := m.Run()
	if tinyDir != "" {
		os.RemoveAll(tinyDir)
	}
	os.Exit(code)
}

func ptr[T any](v T) *T { return &v }

// spec is an edit of "a red circle" with the norm window off, whatever
// the tiny model's default: the tests that count a run's rows count the
// attention control's, and norm_test.go covers the norm window and the
// default.
func spec(steps int, targets ...string) edit.Spec {
	return edit.Spec{Source: "a red circle", Targets: targets, Seed: ptr(uint64(7)), Steps: ptr(steps), Norm: &edit.Window{}}
}

func TestGenerateIsDeterministic(t *testing.T) {
	e := loadTiny(t, Options{CacheBytes: -1})
	ctx := context.Background()
	req := GenerateRequest{Prompt: "a blue square", Seed: 3, Steps: 8}
	a, err := e.Generate(ctx, req, RunOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Generate(ctx, req, RunOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Images) != 1 || len(a.Images[0].RGB) != 3*64*64 || !bytes.Equal(a.Images[0].RGB, b.Images[0].RGB) {
		t.Fatal("two runs of the same request differ")
	}
	req.Seed = 4
	c, err := e.Generate(ctx, req, RunOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.Images[0].RGB, c.Images[0].RGB) {
		t.Fatal("seeds 3 and 4 gave the same image")
	}
	if a.UNetRows != 2*8 || a.Timings.StepCount != 8 {
		t.Errorf("rows %d, steps %d; want 16 rows (uncond + cond) in 8 steps", a.UNetRows, a.Timings.StepCount)
	}
}

// Editing a generated image reuses its source trajectory: the source image is
// the generated one, and each step evaluates 1 + 2E rows instead of 2(1+E).
func TestEditReusesSourceFromCache(t *testing.T) {
	e := loadTiny(t, Options{})
	ctx := context.Background()
	const steps = 8
	gen, err := e.Generate(ctx, GenerateRequest{Prompt: "a red circle", Seed: 7, Steps: steps}, RunOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cached, err := e.Edit(ctx, spec(steps, "a green circle"), RunOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !cached.SourceCached || cached.UNetRows != 3*steps {
		t.Fatalf("cached edit: cached=%v rows=%d, want true and %d", cached.SourceCached, cached.UNetRows, 3*steps)
	}
	if !bytes.Equal(cached.Images[0].RGB, gen.Images[0].RGB) {
		t.Fatal("cached edit's source differs from the generated image")
	}
	full, err := e.Edit(ctx, spec(steps, "a green circle"), RunOptions{NoSourceCache: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if full.SourceCached || full.UNetRows != 4*steps {
		t.Fatalf("uncached edit: cached=%v rows=%d, want false and %d", full.SourceCached, full.UNetRows, 4*steps)
	}
	if d := maxDiff(full.Images[1].RGB, cached.Images[1].RGB); d > 2 {
		t.Errorf("target with and without the cache differs by up to %d levels", d)
	}
	again, err := e.Edit(ctx, spec(steps, "a green circle"), RunOptions{NoSourceCache: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for r := range full.Images {
		if !bytes.Equal(full.Images[r].RGB, again.Images[r].RGB) {
			t.Fatalf("row %d differs between two identical edits", r)
		}
	}
}

func maxDiff(a, b []byte) int {
	d := 0
	for i := range a {
		d = max(d, int(a[i])-int(b[i]), int(b[i])-int(a[i]))
	}
	return d
}

// With no control the target is what its prompt gives alone; with
// Prompt-to-Prompt it differs from that baseline.
func TestBaselineAndControlDiffer(t *testing.T) {
	e := loadTiny(t, Options{CacheBytes: -1})
	ctx := context.Background()
	s := spec(8, "a green circle")
	base, err := e.Edit(ctx, s, RunOptions{Baseline: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	alone, err := e.Generate(ctx, GenerateRequest{Prompt: "a green circle", Seed: 7, Steps: 8}, RunOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(base.Images[1].RGB, alone.Images[0].RGB); d > 2 {
		t.Errorf("baseline target differs from the target prompt alone by up to %d levels", d)
	}
	p2p, err := e.Edit(ctx, s, RunOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(p2p.Images[1].RGB, base.Images[1].RGB) {
		t.Error("Prompt-to-Prompt control changed nothing")
	}
	if !bytes.Equal(p2p.Images[0].RGB, base.Images[0].RGB) {
		t.Error("the control changed the source row")
	}
}

func TestPreviewsHeatMapsAndBlend(t *testing.T) {
	e := loadTiny(t, Options{CacheBytes: -1})
	s := spec(6, "a green circle", "a red square")
	s.Blend = []edit.Blend{{Words: []string{"circle"}}, {Words: []string{"circle", "square"}}}
	var mu sync.Mutex
	var got []Preview
	res, err := e.Edit(context.Background(), s, RunOptions{HeatMaps: true}, func(p Preview) {
		mu.Lock()
		got = append(got, p)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	finals, rowsSeen := 0, map[int]bool{}
	for _, p := range got {
		rowsSeen[p.Row] = true
		if p.Final {
			finals++
			if p.Width != 64 || len(p.RGB) != 3*64*64 {
				t.Errorf("final preview %dx%d with %d bytes", p.Width, p.Height, len(p.RGB))
			}
		} else if p.Width != 16 || len(p.RGB) != 3*16*16 || p.Total != 6 || p.Step < 1 || p.Step > 6 {
			t.Errorf("step preview %+v", p)
		}
	}
	if finals != 3 || len(rowsSeen) != 3 {
		t.Errorf("%d final previews over rows %v; want 3 over rows 0..2", finals, rowsSeen)
	}
	if res.Timings.FirstPreview <= 0 || res.Timings.FirstPreview > res.Timings.Total {
		t.Errorf("first preview at %v of %v", res.Timings.FirstPreview, res.Timings.Total)
	}
	if len(res.HeatMaps) != 3 {
		t.Fatalf("%d heat maps", len(res.HeatMaps))
	}
	hm := res.HeatMaps[0]
	if len(hm.Tokens) != 5 || len(hm.Maps) != 5 || len(hm.Maps[2]) != 16*16 || hm.Width != 16 || hm.Height != 16 || hm.Stride != 1 {
		t.Fatalf("heat map of %q: tokens %q, %d maps of %d values, %dx%d at stride %d; want 5 maps of 16x16 at stride 1",
			hm.Prompt, hm.Tokens, len(hm.Maps), len(hm.Maps[0]), hm.Width, hm.Height, hm.Stride)
	}
	var sum float32
	for _, v := range hm.Maps[3] { // "circle"
		sum += v
	}
	if !(sum > 0) {
		t.Errorf("attention to 'circle' sums to %v", sum)
	}
}

// Local blend belongs to each target: blending the third target leaves
// the first two exactly as without any blend (they used to become copies
// of the source when they lacked the blend word), and changes the third.
func TestLocalBlendIsPerTarget(t *testing.T) {
	e := loadTiny(t, Options{CacheBytes: -1})
	s := spec(8, "a blue circle", "a red square", "a green circle")
	plain, err := e.Edit(context.Background(), s, RunOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Blend = []edit.Blend{{}, {}, {Words: []string{"green"}, Exclude: []string{"circle"}}}
	blended, err := e.Edit(context.Background(), s, RunOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for row := 1; row <= 2; row++ {
		if !bytes.Equal(blended.Images[row].RGB, plain.Images[row].RGB) {
			t.Errorf("row %d has no blend but changed when row 3 was blended", row)
		}
		if bytes.Equal(blended.Images[row].RGB, blended.Images[0].RGB) {
			t.Errorf("row %d is a copy of the source", row)
		}
	}
	// The third target keeps the source where its excluded word is.
	if bytes.Equal(blended.Images[3].RGB, plain.Images[3].RGB) {
		t.Error("the blended target is the same as without its blend")
	}
}

// blend_changed blends each target on the words it changes: the same
// pixels as a blend that names them (what bench edit -blend-changed
// measured), and a target with blend words of its own keeps them.
func TestBlendChangedBlendsTheChangedWords(t *testing.T) {
	e := loadTiny(t, Options{CacheBytes: -1})
	run := editsWith(t, e)
	on, off := true, false
	s := spec(8, "a blue circle", "a red square")
	s.BlendChanged = &off // whatever the model's default
	plain := run(s)
	s.Blend = []edit.Blend{{Words: []string{"red", "blue"}}, {Words: []string{"square"}}}
	named := run(s)
	s.Blend, s.BlendChanged = []edit.Blend{{}, {Words: []string{"square"}}}, &on
	changed := run(s)
	for row := 1; row <= 2; row++ {
		if !bytes.Equal(changed.Images[row].RGB, named.Images[row].RGB) {
			t.Errorf("row %d: blend_changed differs from a blend on the words it names", row)
		}
	}
	if bytes.Equal(changed.Images[1].RGB, plain.Images[1].RGB) {
		t.Error("blend_changed left the colour swap as with blend_changed false")
	}
}

// editsWith returns a function that runs an edit spec on e, failing the
// test on an error.
func editsWith(t *testing.T, e *Engine) func(edit.Spec) *Result {
	return func(s edit.Spec) *Result {
		t.Helper()
		res, err := e.Edit(context.Background(), s, RunOptions{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
}

// blend_reweighted blends a pure reweight on the words it reweights: the
// same pixels as a blend that names them, another edit than without it,
// and a word swap beside it is not blended by it.
func TestBlendReweightedBlendsTheReweightedWords(t *testing.T) {
	e := loadTiny(t, Options{CacheBytes: -1})
	run := editsWith(t, e)
	on, off := true, false
	s := spec(8, "a red circle", "a blue circle")
	s.Reweights = map[string]float64{"red": -1}
	s.BlendChanged, s.BlendReweighted = &off, &off // whatever the model's defaults
	plain := run(s)
	s.Blend = []edit.Blend{{Words: []string{"red"}}}
	named := run(s)
	s.Blend, s.BlendReweighted = nil, &on
	reweighted := run(s)
	if !bytes.Equal(reweighted.Images[1].RGB, named.Images[1].RGB) {
		t.Error("the reweight with blend_reweighted differs from a blend on the word it reweights")
	}
	if bytes.Equal(reweighted.Images[1].RGB, plain.Images[1].RGB) {
		t.Error("blend_reweighted left the reweight as without it")
	}
	if !bytes.Equal(reweighted.Images[2].RGB, plain.Images[2].RGB) {
		t.Error("blend_reweighted changed the word swap beside the reweight")
	}
}

// A cancelled context stops the run within one step.
func TestCancelStopsWithinOneStep(t *testing.T) {
	e := loadTiny(t, Options{CacheBytes: -1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	last := 0
	_, err := e.Edit(ctx, spec(50, "a green circle"), RunOptions{}, func(p Preview) {
		mu.Lock()
		defer mu.Unlock()
		last = max(last, p.Step)
		if p.Step == 3 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if last > 5 {
		t.Errorf("the run went on to step %d after cancelling at step 3", last)
	}
	// The engine is free again.
	if _, err := e.Generate(context.Background(), GenerateRequest{Prompt: "a red circle", Seed: 1, Steps: 2}, RunOptions{}, nil); err != nil {
		t.Fatal(err)
	}
}

func TestDPMSolverRuns(t *testing.T) {
	e := loadTiny(t, Options{CacheBytes: -1})
	s := spec(10, "a green circle")
	s.Scheduler = "dpmpp-2m"
	res, err := e.Edit(context.Background(), s, RunOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Images) != 2 || res.Timings.StepCount != 10 {
		t.Fatalf("%d images, %d steps", len(res.Images), res.Timings.StepCount)
	}
}

func TestErrors(t *testing.T) {
	e := loadTiny(t, Options{CacheBytes: -1})
	ctx := context.Background()
	s := spec(8, "a green circle")
	s.Scheduler = "euler"
	if _, err := e.Edit(ctx, s, RunOptions{}, nil); err == nil || !strings.Contains(err.Error(), "scheduler") {
		t.Errorf("unknown scheduler: %v", err)
	}
	s = spec(8)
	if _, err := e.Edit(ctx, s, RunOptions{}, nil); err == nil || !strings.Contains(err.Error(), "targets") {
		t.Errorf("no targets: %v", err)
	}
	s = spec(8, "a green circle")
	s.Image = strings.Repeat("a", 64)
	if _, err := e.Edit(ctx, s, RunOptions{}, nil); err == nil || !strings.Contains(err.Error(), "RunOptions.Photo") {
		t.Errorf("photo edit without the photo: %v", err)
	}
	if _, err := e.Generate(ctx, GenerateRequest{Prompt: " ", Seed: 1}, RunOptions{}, nil); err == nil || !strings.Contains(err.Error(), "source") {
		t.Errorf("empty prompt: %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "nothing"), Options{}); err == nil || !strings.Contains(err.Error(), "nothing") {
		t.Errorf("missing folder: %v", err)
	}
	bare := t.TempDir()
	if err := tinytest.Copy(tinyDir, bare); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bare, Options{}); err == nil || !strings.Contains(err.Error(), "reword instrument") {
		t.Errorf("uninstrumented model: %v", err)
	}
}

// With the cross window over the whole run, a word swap copies the source's
// cross-attention into the target in every layer (W = I, c = 0), so the
// target's reported maps equal the source's; without control they differ.
func TestCrossControlReachesTheUNet(t *testing.T) {
	e := loadTiny(t, Options{CacheBytes: -1})
	s := spec(6, "a green circle")
	// Every token, the swapped word too (the tiny model gives it a window
	// of its own), takes the source's maps at every step.
	s.Cross, s.CrossChanged = &edit.Window{Start: 0, End: 1}, &edit.Window{Start: 0, End: 1}
	ctx := context.Background()
	p2p, err := e.Edit(ctx, s, RunOptions{HeatMaps: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	base, err := e.Edit(ctx, s, RunOptions{HeatMaps: true, Baseline: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	diff := func(r *Result) float32 {
		var d float32
		for k, m := range r.HeatMaps[0].Maps {
			for q, v := range m {
				d = max(d, v-r.HeatMaps[1].Maps[k][q], r.HeatMaps[1].Maps[k][q]-v)
			}
		}
		return d
	}
	if d := diff(p2p); d > 1e-6 {
		t.Errorf("controlled target's maps differ from the source's by %g", d)
	}
	if d := diff(base); d < 1e-3 {
		t.Errorf("uncontrolled target's maps equal the source's (max difference %g)", d)
	}
}

// The tiny model's UNet reports its cross-attention at 16×16, 8×8 and 4×4.
// Heat maps come from the finest; local blend keeps reading the 4×4 maps
// (the reference's 1/16-of-the-latent rule). With AllResolutions a run
// returns every row at every resolution, finest first, each token's map
// the mean over the steps of a softmax share, so in [0, 1] with the
// prompt's tokens summing to at most 1 per cell.
func TestHeatMapsAtEveryResolution(t *testing.T) {
	e := loadTiny(t, Options{CacheBytes: -1})
	if len(e.maps) != 3 || e.maps[0].w != 16 || e.maps[1].w != 8 || e.maps[2].w != 4 {
		t.Fatalf("maps outputs %+v, want 16×16, 8×8 and 4×4", e.maps)
	}
	if b := e.maps[e.blendOut]; b.stride != 4 || b.w != 4 || b.h != 4 || fmt.Sprint(e.LocalBlendSize()) != "4 4" {
		t.Errorf("local blend reads %+v, want the 4×4 maps", b)
	}
	if w, h := e.HeatMapSize(); w != 16 || h != 16 {
		t.Errorf("heat maps are %dx%d, want 16x16", w, h)
	}
	ctx := context.Background()
	req := GenerateRequest{Prompt: "a red circle on the left", Seed: 2, Steps: 4}
	res, err := e.Generate(ctx, req, RunOptions{AllResolutions: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.HeatMaps) != 3 {
		t.Fatalf("%d heat maps, want one row at 3 resolutions", len(res.HeatMaps))
	}
	for i, hm := range res.HeatMaps {
		side := 16 >> i
		if hm.Row != 0 || hm.Stride != 1<<i || hm.Width != side || hm.Height != side || len(hm.Maps) != len(hm.Tokens) || len(hm.Tokens) != 8 {
			t.Fatalf("heat map %d: row %d, stride %d, %dx%d, %d maps of tokens %q; want row 0, stride %d, %dx%d, 8 tokens",
				i, hm.Row, hm.Stride, hm.Width, hm.Height, len(hm.Maps), hm.Tokens, 1<<i, side, side)
		}
		for q := 0; q < side*side; q++ {
			var cell float32
			for k, m := range hm.Maps {
				if len(m) != side*side || m[q] < 0 || m[q] > 1 {
					t.Fatalf("stride %d token %d cell %d: %d values, value %v", hm.Stride, k, q, len(m), m[q])
				}
				cell += m[q]
			}
			if cell > 1+1e-4 || cell <= 0 {
				t.Fatalf("stride %d cell %d: the prompt's tokens take %v of the attention", hm.Stride, q, cell)
			}
		}
	}
	// HeatMaps alone returns the finest resolution's maps, the same values.
	fine, err := e.Generate(ctx, req, RunOptions{HeatMaps: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(fine.HeatMaps) != 1 || fine.HeatMaps[0].Width != 16 {
		t.Fatalf("HeatMaps gave %d maps", len(fine.HeatMaps))
	}
	for k, m := range fine.HeatMaps[0].Maps {
		for q, v := range m {
			if v != res.HeatMaps[0].Maps[k][q] {
				t.Fatalf("token %d cell %d: %v with HeatMaps, %v with AllResolutions", k, q, v, res.HeatMaps[0].Maps[k][q])
			}
		}
	}
	// A run that reads no maps asks the UNet for none, and draws the same
	// image.
	plain, err := e.Generate(ctx, req, RunOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	img := func(r *Result) []byte { return r.Images[0].RGB }
	if len(plain.HeatMaps) != 0 || !bytes.Equal(img(plain), img(res)) || !bytes.Equal(img(plain), img(fine)) {
		t.Errorf("without maps: %d heat maps, same image as with all maps %v, as with heat maps %v",
			len(plain.HeatMaps), bytes.Equal(img(plain), img(res)), bytes.Equal(img(plain), img(fine)))
	}
}

// An instrumented UNet written by an earlier version (one maps output, no
// layout in its description) is refused with a message that says to
// instrument again, and re-instrumented when Load may write.
func TestOldInstrumentedUNet(t *testing.T) {
	dir := t.TempDir()
	if err := tinytest.Copy(tinytest.Dir(t), dir); err != nil {
		t.Fatal(err)
	}
	e, err := Load(dir, Options{Instrument: true, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	path := filepath.Join(dir, graph.UNetDir, graph.InstrumentedFile)
	m, err := modelfile.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	// What the earlier version wrote: the 4×4 output alone, and a
	// description without layout or blend output.
	g := m.Proto.GetGraph()
	kept := g.Output[:0]
	for _, o := range g.Output {
		if o.GetName() == "out_sample" || o.GetName() == "p2p_maps_div4" {
			kept = append(kept, o)
		}
	}
	g.Output = kept
	if len(kept) != 2 {
		t.Fatalf("the instrumented tiny UNet has no p2p_maps_div4 output to keep")
	}
	old := `{"layers":[],"maps":[{"name":"p2p_maps_div4","stride":4,"resolution":{"height":4,"width":4},"layers":[]}],` +
		`"latent":{"height":16,"width":16},"latent_fixed":true,"self_replace_max_queries":256,"tokens":77,"opset":14,` +
		`"sample_type":"float32","timestep_type":"float32","encoder_hidden_states_type":"float32"}`
	replaceDescription(t, m, path, func(string) string { return old })
	_, err = Load(dir, Options{Threads: 1})
	if err == nil || !strings.Contains(err.Error(), "earlier version of Reword") || !strings.Contains(err.Error(), "reword instrument") {
		t.Fatalf("old instrumented UNet: %v", err)
	}
	t.Logf("refused: %v", err)
	e, err = Load(dir, Options{Instrument: true, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if w, h := e.HeatMapSize(); w != 16 || h != 16 || len(e.maps) != 3 {
		t.Errorf("re-instrumented: heat maps %dx%d from %d outputs", w, h, len(e.maps))
	}
	desc, err := graph.ReadDescription(path)
	if err != nil || desc.CheckLayout() != nil {
		t.Errorf("re-instrumented file: %v, %v", err, desc.CheckLayout())
	}

	// A file that claims the current layout but lacks an output it lists
	// is refused too, not run with a missing buffer.
	m, err = modelfile.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	g = m.Proto.GetGraph()
	for i, o := range g.Output {
		if o.GetName() == "p2p_maps_div2" {
			g.Output = append(g.Output[:i], g.Output[i+1:]...)
			break
		}
	}
	replaceDescription(t, m, path, func(d string) string { return d })
	if _, err := Load(dir, Options{Threads: 1}); err == nil || !strings.Contains(err.Error(), "p2p_maps_div2") || !strings.Contains(err.Error(), "instrument it again") {
		t.Errorf("output missing: %v", err)
	}
}

// replaceDescription rewrites the instrumentation description of the
// instrumented UNet m with edit and writes it back to path, as an earlier
// Reword would have left the file.
func replaceDescription(t *testing.T, m *modelfile.Model, path string, edit func(string) string) {
	t.Helper()
	found := false
	for _, p := range m.Proto.GetMetadataProps() {
		if p.GetKey() == graph.DescriptionKey {
			*p.Value, found = edit(p.GetValue()), true
		}
	}
	if !found {
		t.Fatal("no description in the instrumented file")
	}
	tmp := path + ".old"
	if err := m.Write(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
