package diffusion

import (
	"context"
	"fmt"
	"slices"
	"time"

	"reword/backend/diffusion/preview"
	"reword/backend/diffusion/scheduler"
	"reword/backend/graph"
	"reword/backend/ort"
	"reword/shared/align"
	"reword/shared/clip"
	"reword/shared/edit"
)

// RunOptions choose what a run computes besides the images.
type RunOptions struct {
	// HeatMaps asks for the per-token attention maps of every prompt, at
	// the finest cross-attention resolution within MaxHeatMapPositions
	// (Engine.HeatMapSize).
	HeatMaps bool
	// AllResolutions asks for the heat maps at every cross-attention
	// resolution the UNet reports instead, uncapped (diagnostics: how well
	// each resolution localises a word).
	AllResolutions bool
	// Baseline runs the targets without any attention control or blending:
	// each target is then what its prompt alone gives with the same seed
	// (the comparison of the edit benchmark).
	Baseline bool
	// NoSourceCache neither reads nor fills the source cache (nor, for a
	// photo, the inversions stored in it).
	NoSourceCache bool
	// Photo is the uploaded photo a spec with "image" edits; see Photo.
	Photo *Photo
}

// Edit runs a Prompt-to-Prompt edit: the source prompt and every target of
// spec, from one shared initial noise, with the spec's attention controls.
// A spec with "image" edits the photo in opts.Photo instead: its inversion
// takes the place of the noise and of the generated source (invert.go);
// the source row of the result is then the photo's reconstruction.
// onPreview (may be nil) receives progressive previews from another
// goroutine; it never slows the run, and is not called after Edit returns.
func (e *Engine) Edit(ctx context.Context, spec edit.Spec, opts RunOptions, onPreview func(Preview)) (*Result, error) {
	r, err := spec.Resolve(e.Defaults())
	if err != nil {
		return nil, err
	}
	if r.Image == "" && opts.Photo != nil {
		return nil, fmt.Errorf("photo bytes were given but the spec has no \"image\" to edit")
	}
	j := &job{
		prompts: append([]string{r.Source}, r.Targets...), negative: r.Negative, seed: r.Seed,
		steps: r.Steps, guidance: r.Guidance, scheduler: r.Scheduler, opts: opts,
	}
	if !opts.Baseline {
		ctrl, err := align.New(e.tok, r.AlignConfig())
		if err != nil {
			return nil, err
		}
		j.ctrl = ctrl
		if masks := ctrl.BlendMasks(); masks != nil {
			b := e.maps[e.blendOut]
			j.blend = newLocalBlend(masks, r.Steps, b.w, b.h, e.manifest.Latent.Width, e.manifest.Latent.Height)
		}
	}
	if r.Image != "" {
		return e.editPhoto(ctx, r, j, onPreview)
	}
	return e.run(ctx, j, onPreview)
}

// GenerateRequest is one plain text-to-image generation.
type GenerateRequest struct {
	Prompt   string
	Negative string
	Seed     uint64
	// Steps, Guidance and Scheduler take the model's defaults when zero.
	Steps     int
	Guidance  *float64
	Scheduler string
}

// Generate renders one prompt. Its source trajectory enters the source
// cache, so that editing the result later skips the source's work.
func (e *Engine) Generate(ctx context.Context, req GenerateRequest, opts RunOptions, onPreview func(Preview)) (*Result, error) {
	d := e.Defaults()
	spec := edit.Spec{Source: req.Prompt, Targets: []string{req.Prompt}, Negative: req.Negative, Seed: &req.Seed,
		Guidance: req.Guidance, Scheduler: req.Scheduler}
	if req.Steps != 0 {
		spec.Steps = &req.Steps
	}
	// Validation of a one-target spec checks exactly the fields a
	// generation has; the target is dropped below.
	r, err := spec.Resolve(d)
	if err != nil {
		return nil, err
	}
	j := &job{prompts: []string{r.Source}, negative: r.Negative, seed: r.Seed, steps: r.Steps,
		guidance: r.Guidance, scheduler: r.Scheduler, opts: opts}
	return e.run(ctx, j, onPreview)
}

// job is one run: the source prompt and E targets (E may be 0).
type job struct {
	prompts   []string
	negative  string
	seed      uint64
	steps     int
	guidance  float64
	scheduler string
	opts      RunOptions
	ctrl      *align.Controller // nil: no control (generation, baseline)
	blend     *localBlend       // nil: no local blending

	// Hooks for editing photos (inversion), unset for generated images:
	// initial replaces the seeded noise as x_T of every row; replay gives
	// the source row's latent at every step (Direct Inversion's stored
	// trajectory takes the place of a cached source run); uncondSource
	// uses the source prompt as the unconditional prompt of every row
	// (negative-prompt inversion).
	initial      []float32
	replay       *sourceEntry
	uncondSource bool
}

// run executes a job: see the package doc for the order of work.
func (e *Engine) run(ctx context.Context, j *job, onPreview func(Preview)) (res *Result, err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	start := time.Now()
	m := e.manifest
	res = &Result{}
	var pump *preview.Pump
	if onPreview != nil {
		pump = preview.NewPump(onPreview)
		defer pump.Close()
	}
	firstPreview := func() {
		if res.Timings.FirstPreview == 0 {
			res.Timings.FirstPreview = time.Since(start)
		}
	}

	sched, err := scheduler.New(j.scheduler, e.sched, j.steps)
	if err != nil {
		return nil, err
	}
	ts := sched.Timesteps()
	targets := len(j.prompts) - 1
	rows := 1 + targets
	C, H, W := m.Latent.Channels, m.Latent.Height, m.Latent.Width
	rowSize := C * H * W

	key := newSourceKey(m.ID(), j.prompts[0], j.negative, j.scheduler, j.seed, j.steps, j.guidance)
	useCache := !j.opts.NoSourceCache && e.cache.limit > 0
	cached := j.replay
	if j.replay != nil {
		useCache = false // the source is not a generated image
	} else if useCache && targets > 0 {
		cached = e.cache.get(key)
		res.SourceCached = cached != nil
	}

	// Batch layout (backend/graph): uncond rows, then the 1+E cond rows.
	// With a cached source its uncond row is dropped: the source latents
	// are replayed, but its cond row stays because the targets' attention
	// control reads the source's attention in the same call.
	uncondFirst := 0
	if cached != nil {
		uncondFirst = 1
	}
	batch := rows - uncondFirst + rows

	// Text: the unconditional prompt (negative or empty), then each prompt.
	t0 := time.Now()
	uncond := j.negative
	if j.uncondSource {
		uncond = j.prompts[0]
	}
	emb, err := e.encode(ctx, append([]string{uncond}, j.prompts...))
	if err != nil {
		return nil, err
	}
	embSize := clip.ContextLength * e.hidden
	hidden := make([]float32, batch*embSize)
	for b := 0; b < batch; b++ {
		src := 0 // uncond
		if b >= rows-uncondFirst {
			src = 1 + b - (rows - uncondFirst)
		}
		copy(hidden[b*embSize:], emb[src*embSize:(src+1)*embSize])
	}
	res.Timings.TextEncoder = time.Since(t0)

	// Latents of every row, all from the same noise.
	noise := j.initial
	if noise == nil {
		noise = initialNoise(j.seed, rowSize)
	} else if len(noise) != rowSize {
		return nil, fmt.Errorf("initial latent has %d values; the model's latent has %d", len(noise), rowSize)
	}
	x := make([]float32, rows*rowSize)
	for r := 0; r < rows; r++ {
		copy(x[r*rowSize:], noise)
	}
	stepped := x[uncondFirst*rowSize:] // rows the scheduler advances
	var record *sourceEntry
	if useCache && cached == nil {
		record = &sourceEntry{latents: make([]float32, (j.steps+1)*rowSize), rowSize: rowSize}
	}

	// Buffers and tensors, allocated once for the run.
	sample := make([]float32, batch*rowSize)
	out := make([]float32, batch*rowSize)
	// Every maps output needs a buffer (ONNX Runtime writes them all);
	// only those that local blend or the heat maps read are summed.
	mapsOuts := e.mapsOutputs(rows)
	if j.blend != nil {
		mapsOuts[e.blendOut].sum()
	}
	for _, o := range e.heatMapOutputs(j.opts) {
		mapsOuts[o].sum()
	}
	eps := make([]float32, len(stepped))
	denoised := make([]float32, len(stepped))
	ctl := graph.NoOpControls(targets, clip.ContextLength)
	tensors := &tensorSet{}
	defer tensors.destroy()
	sampleT := tensors.add(ort.NewTensor([]int64{int64(batch), int64(C), int64(H), int64(W)}, sample))
	hiddenT := tensors.add(ort.NewTensor([]int64{int64(batch), clip.ContextLength, int64(e.hidden)}, hidden))
	wShape, cShape, sShape := ctl.Shapes()
	crossWT := tensors.add(ort.NewTensor(wShape, ctl.CrossW))
	crossCT := tensors.add(ort.NewTensor(cShape, ctl.CrossC))
	selfWT := tensors.add(ort.NewTensor(sShape, ctl.SelfW))
	outT := tensors.add(ort.NewTensor([]int64{int64(batch), int64(C), int64(H), int64(W)}, out))
	var timestepT ort.Value
	tsLen := batch
	if e.timestepOne {
		tsLen = 1
	}
	tsF32 := make([]float32, tsLen)
	tsI64 := make([]int64, tsLen)
	if e.timestepType == ort.Int64 {
		timestepT = tensors.add(ort.NewTensor([]int64{int64(tsLen)}, tsI64))
	} else {
		timestepT = tensors.add(ort.NewTensor([]int64{int64(tsLen)}, tsF32))
	}
	if tensors.err != nil {
		return nil, tensors.err
	}
	inputs := map[string]ort.Value{
		graph.SampleInput: sampleT, graph.TimestepInput: timestepT, graph.HiddenStatesInput: hiddenT,
		graph.CrossWeightsInput: crossWT, graph.CrossKeepInput: crossCT, graph.SelfWeightInput: selfWT,
	}
	outputs := map[string]ort.Value{m.UNet.Output: outT}
	for _, o := range mapsOuts {
		outputs[o.name] = tensors.add(ort.NewTensor([]int64{int64(rows), int64(o.w * o.h), clip.ContextLength}, o.values))
	}
	if tensors.err != nil {
		return nil, tensors.err
	}

	stepsStart := time.Now()
	for i, t := range ts {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("run cancelled before step %d of %d: %w", i+1, len(ts), err)
		}
		if cached != nil {
			copy(x[:rowSize], cached.at(i))
		}
		if record != nil {
			copy(record.at(i), x[:rowSize])
		}
		copy(sample, x[uncondFirst*rowSize:])
		copy(sample[(rows-uncondFirst)*rowSize:], x)
		for b := range tsF32 {
			tsF32[b], tsI64[b] = float32(t), int64(t)
		}
		if j.ctrl != nil {
			if err := j.ctrl.Step(i, ctl.CrossW, ctl.CrossC, ctl.SelfW); err != nil {
				return nil, err
			}
		}
		if err := e.unet.RunInto(ctx, inputs, outputs); err != nil {
			return nil, fmt.Errorf("UNet at step %d of %d: %w", i+1, len(ts), err)
		}
		res.UNetRows += batch

		// Classifier-free guidance per stepped row r (its uncond output is
		// at r, its cond output at the cond block's offset).
		n := len(stepped) / rowSize
		condStart := (rows - uncondFirst) + uncondFirst
		g := float32(j.guidance)
		for r := 0; r < n; r++ {
			u := out[r*rowSize : (r+1)*rowSize]
			c := out[(condStart+r)*rowSize : (condStart+r+1)*rowSize]
			dst := eps[r*rowSize : (r+1)*rowSize]
			for k := range dst {
				dst[k] = u[k] + g*(c[k]-u[k])
			}
		}
		if err := sched.Step(i, eps, stepped, denoised); err != nil {
			return nil, fmt.Errorf("step %d of %d: %w", i+1, len(ts), err)
		}
		for _, o := range mapsOuts {
			o.accumulate()
		}
		if j.blend != nil && j.blend.active(i) {
			source := x[:rowSize]
			if cached != nil {
				source = cached.at(i + 1)
			}
			var tgt [][]float32
			for r := 1; r < rows; r++ {
				tgt = append(tgt, x[r*rowSize:(r+1)*rowSize])
			}
			j.blend.apply(mapsOuts[e.blendOut].sums, source, tgt, rowSize)
		}
		if pump != nil {
			for r := 0; r < n; r++ {
				img := make([]byte, 3*H*W)
				if err := e.project.Render(denoised[r*rowSize:(r+1)*rowSize], H, W, img); err != nil {
					return nil, err
				}
				pump.Offer(Preview{Row: r + uncondFirst, Step: i + 1, Total: len(ts), Width: W, Height: H, RGB: img})
			}
			firstPreview()
		}
	}
	res.Timings.Steps = time.Since(stepsStart)
	res.Timings.StepCount = len(ts)
	if cached != nil {
		copy(x[:rowSize], cached.at(len(ts)))
	}
	if record != nil {
		copy(record.at(len(ts)), x[:rowSize])
	}

	t0 = time.Now()
	// A stored source image is reused; a replayed trajectory without one
	// (a photo's inversion) is decoded with the targets.
	decodeFrom := 0
	if cached != nil && cached.image != nil {
		decodeFrom = 1
	}
	images, err := e.decode(ctx, x[decodeFrom*rowSize:], rows-decodeFrom)
	if err != nil {
		return nil, err
	}
	if decodeFrom == 1 {
		images = append([][]byte{cached.image}, images...)
	}
	res.Timings.Decode = time.Since(t0)
	for r, rgb := range images {
		res.Images = append(res.Images, Image{Row: r, Prompt: j.prompts[r], Width: m.Image.Width, Height: m.Image.Height, RGB: rgb})
		if pump != nil {
			pump.Offer(Preview{Row: r, Step: len(ts), Total: len(ts), Width: m.Image.Width, Height: m.Image.Height, RGB: slices.Clone(rgb), Final: true})
			firstPreview()
		}
	}
	if record != nil {
		record.image = images[0]
		e.cache.put(key, record)
	}
	for _, o := range e.heatMapOutputs(j.opts) {
		res.HeatMaps = append(res.HeatMaps, e.heatMaps(j.prompts, mapsOuts[o], len(ts))...)
	}
	res.Timings.Total = time.Since(start)
	return res, nil
}

// encode returns the text embeddings of prompts, [len(prompts), 77, hidden].
func (e *Engine) encode(ctx context.Context, prompts []string) ([]float32, error) {
	n := len(prompts)
	ids32 := make([]int32, 0, n*clip.ContextLength)
	for _, p := range prompts {
		ids32 = append(ids32, e.tok.Encode(p).Padded(clip.ContextLength)...)
	}
	shape := []int64{int64(n), clip.ContextLength}
	var in ort.Value
	var err error
	if info, _ := e.text.Input(e.manifest.TextEncoder.Input); info.DType == ort.Int64 {
		ids64 := make([]int64, len(ids32))
		for i, v := range ids32 {
			ids64[i] = int64(v)
		}
		in, err = ort.NewTensor(shape, ids64)
	} else {
		in, err = ort.NewTensor(shape, ids32)
	}
	if err != nil {
		return nil, err
	}
	defer in.Destroy()
	outs, err := e.text.RunContext(ctx, map[string]ort.Value{e.manifest.TextEncoder.Input: in})
	if err != nil {
		return nil, fmt.Errorf("text encoder: %w", err)
	}
	defer outs.Destroy()
	emb, got, err := outs.Float32(e.manifest.TextEncoder.Output)
	if err != nil {
		return nil, fmt.Errorf("text encoder: %w", err)
	}
	if want := n * clip.ContextLength * e.hidden; len(emb) != want {
		return nil, fmt.Errorf("text encoder returned shape %v; want [%d, 77, %d]", got, n, e.hidden)
	}
	return emb, nil
}

// decode runs the VAE decoder on n latents (UNet scale) and returns RGB bytes.
func (e *Engine) decode(ctx context.Context, latents []float32, n int) ([][]byte, error) {
	m := e.manifest
	scaled := make([]float32, len(latents))
	inv := float32(1 / m.Latent.ScalingFactor)
	for i, v := range latents {
		scaled[i] = v * inv
	}
	in, err := ort.NewTensor([]int64{int64(n), int64(m.Latent.Channels), int64(m.Latent.Height), int64(m.Latent.Width)}, scaled)
	if err != nil {
		return nil, err
	}
	defer in.Destroy()
	outs, err := e.decoder.RunContext(ctx, map[string]ort.Value{m.VAEDecoder.Input: in})
	if err != nil {
		return nil, fmt.Errorf("VAE decoder: %w", err)
	}
	defer outs.Destroy()
	pix, shape, err := outs.Float32(m.VAEDecoder.Output)
	if err != nil {
		return nil, fmt.Errorf("VAE decoder: %w", err)
	}
	w, h := m.Image.Width, m.Image.Height
	if len(pix) != n*3*w*h {
		return nil, fmt.Errorf("VAE decoder returned shape %v; want [%d, 3, %d, %d]", shape, n, h, w)
	}
	images := make([][]byte, n)
	plane := w * h
	for r := range images {
		img := make([]byte, 3*plane)
		base := pix[r*3*plane:]
		for p := 0; p < plane; p++ {
			for c := 0; c < 3; c++ {
				img[3*p+c] = preview.ToByte(float64(base[c*plane+p]))
			}
		}
		images[r] = img
	}
	return images, nil
}

// mapsRun holds one maps output's values during a run and, when something
// reads them, their running sum over the steps.
type mapsRun struct {
	mapsOutput
	values []float32 // [rows, w·h, 77], written by every UNet call
	sums   []float32 // nil: not summed
}

func (e *Engine) mapsOutputs(rows int) []*mapsRun {
	out := make([]*mapsRun, len(e.maps))
	for i, o := range e.maps {
		out[i] = &mapsRun{mapsOutput: o, values: make([]float32, rows*o.w*o.h*clip.ContextLength)}
	}
	return out
}

func (r *mapsRun) sum() {
	if r.sums == nil {
		r.sums = make([]float32, len(r.values))
	}
}

func (r *mapsRun) accumulate() {
	if r.sums == nil {
		return
	}
	for k, v := range r.values {
		r.sums[k] += v
	}
}

// heatMapOutputs lists the maps outputs whose heat maps a run returns.
func (e *Engine) heatMapOutputs(opts RunOptions) []int {
	switch {
	case opts.AllResolutions:
		all := make([]int, len(e.maps))
		for i := range all {
			all[i] = i
		}
		return all
	case opts.HeatMaps:
		return []int{e.heatOut}
	}
	return nil
}

// heatMaps turns one output's summed maps into per-token averages over the
// steps.
func (e *Engine) heatMaps(prompts []string, o *mapsRun, steps int) []HeatMap {
	n := o.w * o.h
	var out []HeatMap
	for r, p := range prompts {
		enc := e.tok.Encode(p)
		count := min(len(enc.IDs), clip.ContextLength)
		hm := HeatMap{Row: r, Prompt: p, Tokens: slices.Clone(enc.Tokens[:count]), Stride: o.stride, Width: o.w, Height: o.h}
		block := o.sums[r*n*clip.ContextLength : (r+1)*n*clip.ContextLength]
		for k := 0; k < count; k++ {
			m := make([]float32, n)
			for q := 0; q < n; q++ {
				m[q] = block[q*clip.ContextLength+k] / float32(steps)
			}
			hm.Maps = append(hm.Maps, m)
		}
		out = append(out, hm)
	}
	return out
}

// tensorSet collects the tensors of a run so that one defer frees them all.
type tensorSet struct {
	values []ort.Value
	err    error
}

// add records v (or the first error) and returns v.
func (s *tensorSet) add(v ort.Value, err error) ort.Value {
	if err != nil {
		if s.err == nil {
			s.err = fmt.Errorf("allocating tensors: %w", err)
		}
		return nil
	}
	s.values = append(s.values, v)
	return v
}

func (s *tensorSet) destroy() {
	for _, v := range s.values {
		v.Destroy()
	}
}
