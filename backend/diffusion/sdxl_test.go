package diffusion

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"reword/backend/internal/sdtest"
	"reword/backend/model"
	"reword/backend/ort"
	"reword/shared/align"
	"reword/shared/clip"
	"reword/shared/edit"
)

// sdxlConfig is the SDXL-shaped export the engine tests run: SDXL's
// layout at test width, its lowest blocks 2 transformer blocks deep
// instead of 10, which keeps ONNX Runtime's session setup short (the
// instrumentation of the full depth is tested in backend/graph and by the
// CLI).
func sdxlConfig() sdtest.Config {
	cfg := sdtest.Small(sdtest.SDXL)
	cfg.Depth = []int{1, 2, 2}
	return cfg
}

// loadSDXL writes the SDXL-shaped export, instruments it at its own latent
// size and loads it with the manifest derived from its configs, without a
// source cache.
func loadSDXL(t *testing.T) (*Engine, sdtest.Config) {
	return loadSDXLCache(t, -1)
}

// loadSDXLCache is loadSDXL with a source cache of cacheBytes (0: the
// default).
func loadSDXLCache(t *testing.T, cacheBytes int64) (*Engine, sdtest.Config) {
	t.Helper()
	cfg := sdxlConfig()
	dir := t.TempDir()
	if err := sdtest.Write(dir, cfg); err != nil {
		t.Fatal(err)
	}
	return instrumentAndLoad(t, dir, cfg, cacheBytes), cfg
}

// The SDXL-shaped export (two text encoders, a UNet that also takes
// text_embeds and time_ids) loads with its derived manifest and runs every
// kind of job end to end as SD 1.5 and 2.1 do: neutral controls leave its
// UNet bit for bit as exported (text_embeds and time_ids fed to both),
// generation is deterministic, an edit's controls reach the UNet (the
// target's cross-attention maps become the source's), and a photo inverts
// with Direct Inversion's reconstruction exactly the VAE round trip.
func TestSDXLShapedExportRunsEndToEnd(t *testing.T) {
	e, cfg := loadSDXLCache(t, 0)
	m := e.Manifest()
	side := 8 * cfg.SampleSize
	if !m.Derived || m.Family != model.SDXL.Name || m.Image.Width != side || m.Latent.ScalingFactor != 0.13025 ||
		len(e.texts) != 2 || e.hidden != cfg.CrossDim || e.pooled != cfg.TextEmbedsDim || !m.ZeroEmptyNegative {
		t.Fatalf("manifest: derived %v, family %q, %d px, scale %v, %d encoders, text width %d, pooled %d, zeros %v", m.Derived, m.Family,
			m.Image.Width, m.Latent.ScalingFactor, len(e.texts), e.hidden, e.pooled, m.ZeroEmptyNegative)
	}
	if e.texts[0].pad != clip.EOS || e.texts[1].pad != 0 {
		t.Errorf("pads: %d and %d; want EOS and 0 (\"!\")", e.texts[0].pad, e.texts[1].pad)
	}
	checkNeutralIsNoOp(t, e)
	checkSDGenerate(t, e, side)
	checkSDEdit(t, e)
	checkSDPhoto(t, e)
	checkSDXLControls(t, e)
}

// checkSDXLControls: the other Prompt-to-Prompt controls run on SDXL and
// change the target: a refinement (an added word), a reweight of a word of
// a target equal to the source, a local blend; and an edit whose source is
// in the source cache gives the same bytes as one that denoises it. The
// blend excludes a word: random weights spread a word's attention so evenly
// that its region is the whole image, where blending to it changes
// nothing and excluding it keeps the source.
func checkSDXLControls(t *testing.T, e *Engine) {
	t.Helper()
	ctx := context.Background()
	const source = "a photo of a cat"
	base := edit.Spec{Source: source, Seed: ptr(uint64(5)), Steps: ptr(2), Cross: &edit.Window{Start: 0, End: 1}}
	run := func(what string, s edit.Spec, opts RunOptions) *Result {
		t.Helper()
		res, err := e.Edit(ctx, s, opts, nil)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return res
	}
	refine := base
	refine.Targets, refine.Kinds = []string{"a photo of a fluffy cat"}, []align.Choice{align.ForceRefine}
	baseline := run("refine baseline", refine, RunOptions{Baseline: true, NoSourceCache: true})
	uncached := run("refine", refine, RunOptions{NoSourceCache: true})
	if bytes.Equal(uncached.Images[1].RGB, baseline.Images[1].RGB) {
		t.Error("refine: the controls left the target as the baseline")
	}
	first := run("refine, filling the cache", refine, RunOptions{})
	cached := run("refine from the cache", refine, RunOptions{})
	if first.SourceCached || !cached.SourceCached {
		t.Errorf("source cache: first run cached %v, second %v", first.SourceCached, cached.SourceCached)
	}
	for r := range uncached.Images {
		if !bytes.Equal(cached.Images[r].RGB, uncached.Images[r].RGB) || !bytes.Equal(first.Images[r].RGB, uncached.Images[r].RGB) {
			t.Errorf("row %d differs between runs with and without the source cache", r)
		}
	}
	reweight := base
	reweight.Targets, reweight.Reweights = []string{source}, map[string]float64{"cat": 2}
	if rw := run("reweight", reweight, RunOptions{NoSourceCache: true}); bytes.Equal(rw.Images[1].RGB, rw.Images[0].RGB) {
		t.Error("reweighting cat ×2 left the image as the source")
	}
	swap := base
	swap.Targets = []string{"a photo of a dog"}
	plain := run("swap", swap, RunOptions{NoSourceCache: true})
	swap.Blend = []edit.Blend{{Words: []string{"cat"}, Exclude: []string{"photo"}}}
	if blended := run("blend", swap, RunOptions{NoSourceCache: true}); bytes.Equal(blended.Images[1].RGB, plain.Images[1].RGB) {
		t.Error("local blend left the target as it was without it")
	}
}

// SDXL's conditioning, on one loaded engine: the text states and pooled
// embedding of a prompt (checkSDXLEncoding), of a run's batch
// (checkSDXLBatch), and the text_embeds and time_ids reaching the UNet
// (checkSDXLTextTime).
func TestSDXLConditioning(t *testing.T) {
	e, cfg := loadSDXL(t)
	t.Run("encoding", func(t *testing.T) { checkSDXLEncoding(t, e) })
	t.Run("batch", func(t *testing.T) { checkSDXLBatch(t, e) })
	t.Run("text_time", func(t *testing.T) { checkSDXLTextTime(t, e, cfg) })
}

// checkSDXLEncoding: the text conditioning is diffusers'
// StableDiffusionXLPipeline's: each encoder reads the prompt padded with
// its own tokenizer's pad (EOS, then "!" = 0), the UNet's states are the
// first encoder's penultimate states followed by the second's, token by
// token, and text_embeds is the second encoder's pooled projection.
// Checked against the encoders run directly.
func checkSDXLEncoding(t *testing.T, e *Engine) {
	const prompt = "a photo of a cat"
	got, err := e.encode(context.Background(), []string{prompt})
	if err != nil {
		t.Fatal(err)
	}
	enc := e.tok.Encode(prompt)
	m := e.Manifest()
	first := runEncoder(t, e.texts[0].s, enc.PaddedWith(clip.ContextLength, clip.EOS))
	second := runEncoder(t, e.texts[1].s, enc.PaddedWith(clip.ContextLength, 0))
	w1, w2 := e.texts[0].width, e.texts[1].width
	for k := 0; k < clip.ContextLength; k++ {
		state := got.hidden[k*e.hidden : (k+1)*e.hidden]
		if !slices.Equal(state[:w1], first[m.TextEncoder.Output][k*w1:(k+1)*w1]) ||
			!slices.Equal(state[w1:], second[m.TextEncoder2.Output][k*w2:(k+1)*w2]) {
			t.Fatalf("token %d's state is not the first encoder's %s then the second's %s", k, m.TextEncoder.Output, m.TextEncoder2.Output)
		}
	}
	if !slices.Equal(got.pooled, second["text_embeds"]) {
		t.Fatal("the pooled embedding is not the second encoder's text_embeds")
	}
	// The pad matters to the second encoder's states past EOS: EOS
	// padding, SD 1.x's, would give other ones.
	eosPadded := runEncoder(t, e.texts[1].s, enc.PaddedWith(clip.ContextLength, clip.EOS))
	if last := (clip.ContextLength - 1) * w2; slices.Equal(eosPadded[m.TextEncoder2.Output][last:], second[m.TextEncoder2.Output][last:]) {
		t.Error("the second encoder's padding states do not depend on the pad token")
	}
}

// runEncoder runs a text encoder session on one row of ids and returns
// every output.
func runEncoder(t *testing.T, s *ort.Session, ids []int32) map[string][]float32 {
	t.Helper()
	ids64 := make([]int64, len(ids))
	for i, v := range ids {
		ids64[i] = int64(v)
	}
	in, err := ort.NewTensor([]int64{1, int64(len(ids))}, ids64)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Destroy()
	outs, err := s.Run(map[string]ort.Value{"input_ids": in})
	if err != nil {
		t.Fatal(err)
	}
	defer outs.Destroy()
	got := map[string][]float32{}
	for _, o := range s.OutputInfo() {
		if got[o.Name], _, err = outs.Float32(o.Name); err != nil {
			t.Fatal(err)
		}
	}
	return got
}

// checkSDXLBatch: the batch's conditioning as a run lays it out: without
// a negative prompt the unconditional rows are zeros, states and pooled
// embedding alike (force_zeros_for_empty_prompt); with one, its encoding;
// every conditional row has its own prompt's states and pooled embedding
// (an edit's target row the target's); a model without
// force_zeros_for_empty_prompt encodes the empty prompt.
func checkSDXLBatch(t *testing.T, e *Engine) {
	ctx := context.Background()
	prompts := []string{"a photo of a cat", "a photo of a dog"}
	want, err := e.encode(ctx, append([]string{"", "blurry"}, prompts...))
	if err != nil {
		t.Fatal(err)
	}
	rowOf := func(c condition, r int) ([]float32, []float32) {
		h := clip.ContextLength * e.hidden
		return c.hidden[r*h : (r+1)*h], c.pooled[r*e.pooled : (r+1)*e.pooled]
	}
	for _, c := range []struct {
		negative string
		zeros    bool
		uncond   int // row of want; −1: zeros
	}{{"", true, -1}, {"blurry", true, 1}, {"", false, 0}} {
		e.manifest.ZeroEmptyNegative = c.zeros
		s := &sampling{e: e, j: &job{prompts: prompts, negative: c.negative}, res: &Result{}, rows: len(prompts)}
		text, err := s.encodePrompts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Two unconditional rows, then the source's and the target's; the
		// layout without the source's unconditional row (a replayed
		// source) has the target's alone before them.
		for uncondFirst, rows := range [][]int{{c.uncond, c.uncond, 2, 3}, {c.uncond, 2, 3}} {
			got := text.layout(uncondFirst)
			for b, from := range rows {
				h, p := rowOf(got, b)
				wh, wp := make([]float32, len(h)), make([]float32, len(p))
				if from >= 0 {
					wh, wp = rowOf(want, from)
				}
				if !slices.Equal(h, wh) || !slices.Equal(p, wp) {
					t.Errorf("negative %q, zeros %v, layout from %d: row %d is not row %d of the encoding", c.negative, c.zeros, uncondFirst, b, from)
				}
			}
		}
	}
	e.manifest.ZeroEmptyNegative = true
	// Negative-prompt inversion's unconditional rows are the source's.
	s := &sampling{e: e, j: &job{prompts: prompts, origin: origin{uncondSource: true}}, res: &Result{}, rows: len(prompts)}
	text, err := s.encodePrompts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := rowOf(text.layout(0), 0); !slices.Equal(h, want.hidden[2*len(h):3*len(h)]) {
		t.Error("negative-prompt inversion's unconditional row is not the source's encoding")
	}
}

// checkSDXLTextTime: text_embeds and time_ids reach the UNet: another
// pooled embedding or another size's time_ids (512 px instead of the
// model's 128) change its output. The time_ids a run feeds are diffusers'
// defaults for the model's size: (h, w, 0, 0, h, w). A manifest that
// disagrees with the UNet about them is refused in words.
func checkSDXLTextTime(t *testing.T, e *Engine, cfg sdtest.Config) {
	side := float32(8 * cfg.SampleSize)
	if got := e.timeIDs(); got != [timeIDCount]float32{side, side, 0, 0, side, side} {
		t.Errorf("time_ids %v; want the image size, no crop", got)
	}
	const batch = 2
	r := rand.New(rand.NewPCG(1, 2))
	text := condition{hidden: make([]float32, batch*clip.ContextLength*e.hidden), pooled: make([]float32, batch*e.pooled)}
	for _, v := range [][]float32{text.hidden, text.pooled} {
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
	}
	u, err := e.bindUNet(batch, 1, 0, text, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer u.close()
	for i := range u.sample {
		u.sample[i] = float32(r.NormFloat64())
	}
	if !slices.Equal(u.timeIDs[:timeIDCount], []float32{side, side, 0, 0, side, side}) || len(u.timeIDs) != batch*timeIDCount {
		t.Fatalf("time_ids fed: %v", u.timeIDs)
	}
	run := func() []float32 {
		if err := u.run(context.Background(), 501); err != nil {
			t.Fatal(err)
		}
		return slices.Clone(u.out)
	}
	base := run()
	if again := run(); !slices.Equal(again, base) {
		t.Fatal("two runs of the same inputs differ")
	}
	u.text.pooled[0] += 1
	if d := maxDiffF32(run(), base); d == 0 {
		t.Error("another pooled embedding left the UNet's output as it was")
	}
	u.text.pooled[0] -= 1
	for b := range batch {
		copy(u.timeIDs[b*timeIDCount:], []float32{512, 512, 0, 0, 512, 512})
	}
	if d := maxDiffF32(run(), base); d == 0 {
		t.Error("other time_ids left the UNet's output as it was")
	}
	e.manifest.UNet.TextTime = false
	if err := e.checkTextTime(); err == nil || !strings.Contains(err.Error(), "(an SDXL UNet) but the manifest has one text encoder") {
		t.Errorf("a one-encoder manifest over SDXL's UNet: %v", err)
	}
	e.manifest.UNet.TextTime = true
	e.pooled++
	if err := e.checkTextTime(); err == nil || !strings.Contains(err.Error(), "text_embeds of width") {
		t.Errorf("a pooled width the UNet does not take: %v", err)
	}
	e.pooled--
}

// maxDiffF32 is the largest difference between two float slices.
func maxDiffF32(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}
