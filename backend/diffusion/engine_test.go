package diffusion

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

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

func spec(steps int, targets ...string) edit.Spec {
	return edit.Spec{Source: "a red circle", Targets: targets, Seed: ptr(uint64(7)), Steps: ptr(steps)}
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
	s.Blend = []string{"circle", "square"}
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
	if len(hm.Tokens) != 5 || len(hm.Maps) != 5 || len(hm.Maps[2]) != hm.Width*hm.Height {
		t.Fatalf("heat map of %q: tokens %q, %d maps of %d values", hm.Prompt, hm.Tokens, len(hm.Maps), len(hm.Maps[0]))
	}
	var sum float32
	for _, v := range hm.Maps[3] { // "circle"
		sum += v
	}
	if !(sum > 0) {
		t.Errorf("attention to 'circle' sums to %v", sum)
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
	// An instrumented UNet whose self-replace layers differ from the
	// manifest's is refused, and written again when allowed.
	instrumented, err := Load(bare, Options{Instrument: true, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	instrumented.Close()
	manifest := filepath.Join(bare, "model.json")
	raw, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(raw), `"self_replace_max_tokens": 256`, `"self_replace_max_tokens": 64`, 1)
	if changed == string(raw) {
		t.Fatal("the tiny model's manifest has no self_replace_max_tokens of 256 to change")
	}
	if err := os.WriteFile(manifest, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bare, Options{}); err == nil || !strings.Contains(err.Error(), "-self-max-queries 64") {
		t.Errorf("stale self-replace layers: %v", err)
	}
	again, err := Load(bare, Options{Instrument: true, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	again.Close()
}

// With the cross window over the whole run, a word swap copies the source's
// cross-attention into the target in every layer (W = I, c = 0), so the
// target's reported maps equal the source's; without control they differ.
func TestCrossControlReachesTheUNet(t *testing.T) {
	e := loadTiny(t, Options{CacheBytes: -1})
	s := spec(6, "a green circle")
	s.Cross = &edit.Window{Start: 0, End: 1}
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
