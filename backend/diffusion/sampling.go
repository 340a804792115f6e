package diffusion

import (
	"context"
	"fmt"
	"slices"
	"time"

	"reword/backend/scheduler"
)

// sampling is one run in progress: the stages a job is made of and the
// buffers they share. Rows are the source (row 0) and the targets; the
// stepped rows are those the scheduler advances: every row, or the
// targets alone when the source row is replayed.
type sampling struct {
	e     *Engine
	j     *job
	res   *Result
	sched scheduler.Scheduler
	unet  *unetCall
	// lean, when set, is the UNet call of the steps in which no target's
	// GroupNorms take the source's means, for a job that keeps the
	// source's unconditional row for the steps that do (job.sourceRows)
	// while its source is replayed: it leaves that row out, as a replayed
	// source's batch does otherwise, one row fewer a step. It shares
	// unet's controls and maps.
	lean     *unetCall
	controls controlSchedule
	previews *previews

	rows, rowSize int
	// source, when set, gives the source row's latent at every step: a
	// cached generation of the same source, or an inversion's replayed
	// trajectory. Its unconditional row is then left out of the batch
	// (uncondFirst = 1), but its conditional row stays, because the
	// targets' attention control reads the source's attention in the
	// same call. A job that needs the unconditional row too
	// (job.sourceRows) keeps it in the steps that need it (see lean) and
	// steps the source row like the others; the replayed latent
	// overwrites the result at every step.
	source      *sourceEntry
	uncondFirst int
	// record, when set, stores the denoised source row's trajectory in
	// the source cache under key.
	record *sourceEntry
	key    sourceKey

	x             []float32 // latents of every row
	eps, denoised []float32 // per stepped row
}

// prepare sets up the stages of job j: the scheduler, where the source row
// comes from, the text states, the starting latents, the UNet call and
// the control schedule.
func (e *Engine) prepare(ctx context.Context, j *job, pv *previews) (*sampling, error) {
	m := e.manifest
	s := &sampling{e: e, j: j, res: &Result{}, previews: pv, rows: len(j.prompts),
		rowSize: m.Latent.Channels * m.Latent.Height * m.Latent.Width}
	var err error
	if s.sched, err = scheduler.New(j.scheduler, e.manifest.Schedule, j.steps); err != nil {
		return nil, err
	}
	s.chooseSource()
	text, err := s.encodePrompts(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.startLatents(); err != nil {
		return nil, err
	}
	stepped := s.rows - s.uncondFirst
	if s.unet, err = e.bindUNet(stepped+s.rows, s.rows, s.rows-1, text.layout(s.uncondFirst), j.selfLayers); err != nil {
		return nil, err
	}
	if s.source != nil && j.sourceRows {
		if s.lean, err = s.unet.sibling(2*s.rows-1, text.layout(1), j.selfLayers); err != nil {
			s.close()
			return nil, err
		}
	}
	s.controls = controlSchedule{ctrl: j.ctrl, ctl: s.unet.ctl}
	if j.blend != nil {
		s.readMaps(e.blendOut)
	}
	for _, o := range e.heatMapOutputs(j.opts) {
		s.readMaps(o)
	}
	return s, nil
}

// readMaps has every UNet call of the run read maps output o.
func (s *sampling) readMaps(o int) {
	s.unet.readMaps(o)
	if s.lean != nil {
		s.lean.readMaps(o)
	}
}

func (s *sampling) close() {
	if s.unet != nil {
		s.unet.close()
	}
	if s.lean != nil {
		s.lean.close()
	}
}

// callAt is the UNet call of the step whose controls are set, and the
// first row of its batch that has an unconditional row: the lean call
// when it has one and no target takes the source's GroupNorm means.
func (s *sampling) callAt() (*unetCall, int) {
	if s.lean != nil && !slices.ContainsFunc(s.unet.ctl.NormW, func(g float32) bool { return g > 0 }) {
		return s.lean, 1
	}
	return s.unet, s.uncondFirst
}

// chooseSource decides where the source row comes from: replayed (an
// inversion's trajectory, or a cached generation of the same source), or
// denoised with the targets, and then recorded for the cache when the
// cache may hold it.
func (s *sampling) chooseSource() {
	e, j := s.e, s.j
	defer func() {
		if s.source != nil && !j.sourceRows {
			s.uncondFirst = 1
		}
	}()
	if j.origin.replay != nil {
		s.source = j.origin.replay
		return
	}
	if j.opts.NoSourceCache || j.origin.photo || e.cache.limit <= 0 {
		return
	}
	s.key = newSourceKey(e.manifest.ID(), j.prompts[0], j.negative, j.scheduler, j.seed, j.steps, j.guidance)
	if len(j.prompts) > 1 {
		s.source = e.cache.get(s.key)
		s.res.SourceCached = s.source != nil
	}
	if s.source == nil {
		s.record = &sourceEntry{latents: make([]float32, (j.steps+1)*s.rowSize), rowSize: s.rowSize}
	}
}

// encodedText is a run's prompts encoded once, for the batch layouts of
// its UNet calls.
type encodedText struct {
	s   *sampling
	enc condition
	// uncond and cond index enc: the unconditional rows' prompt (−1:
	// zeros) and the first conditional row's.
	uncond, cond int
}

// encodePrompts encodes the unconditional prompt (the negative one, or
// the source for negative-prompt inversion) and every prompt. Without a
// negative prompt, a model with force_zeros_for_empty_prompt (SDXL) gets
// zero unconditional rows.
func (s *sampling) encodePrompts(ctx context.Context) (encodedText, error) {
	t0 := time.Now()
	prompts, uncond, cond := s.j.prompts, -1, 0
	switch {
	case s.j.origin.uncondSource:
		uncond = 0 // the source prompt's own encoding
	case s.j.negative == "" && s.e.manifest.ZeroEmptyNegative:
	default:
		prompts, uncond, cond = append([]string{s.j.negative}, prompts...), 0, 1
	}
	enc, err := s.e.encode(ctx, prompts)
	if err != nil {
		return encodedText{}, err
	}
	s.res.Timings.TextEncoder = time.Since(t0)
	return encodedText{s: s, enc: enc, uncond: uncond, cond: cond}, nil
}

// layout lays the text out as a batch takes it whose rows from
// uncondFirst on have an unconditional row: those rows' unconditional
// rows, then every row's own prompt. Each row's pooled embedding (SDXL)
// is its own prompt's, so an edit's target rows take the target's, as
// diffusers' Prompt-to-Prompt for SDXL does.
func (t encodedText) layout(uncondFirst int) condition {
	s := t.s
	stepped := s.rows - uncondFirst
	from := make([]int, stepped+s.rows)
	for b := range from {
		from[b] = t.uncond
		if b >= stepped {
			from[b] = t.cond + b - stepped
		}
	}
	c := t.enc.gather(s.e, from)
	c.keepSourceText(s.e, stepped, s.j.textFrom)
	return c
}

// startLatents puts x_T in every row: all rows start from the same noise.
func (s *sampling) startLatents() error {
	noise := s.j.origin.noise
	if noise == nil {
		noise = initialNoise(s.j.seed, s.rowSize)
	} else if len(noise) != s.rowSize {
		return fmt.Errorf("initial latent has %d values; the model's latent has %d", len(noise), s.rowSize)
	}
	s.x = make([]float32, s.rows*s.rowSize)
	for r := range s.rows {
		copy(s.x[r*s.rowSize:], noise)
	}
	n := (s.rows - s.uncondFirst) * s.rowSize
	s.eps, s.denoised = make([]float32, n), make([]float32, n)
	return nil
}

// denoise runs the sampling loop: at every step the batch's UNet call
// under the step's attention controls, classifier-free guidance, the
// scheduler's update of the stepped rows, local blend and previews.
func (s *sampling) denoise(ctx context.Context) error {
	ts := s.sched.Timesteps()
	start := time.Now()
	for i, t := range ts {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("run cancelled before step %d of %d: %w", i+1, len(ts), err)
		}
		s.syncSource(i)
		if err := s.controls.at(i); err != nil {
			return err
		}
		u, uncondFirst := s.callAt()
		copy(u.sample, s.x[uncondFirst*s.rowSize:])
		copy(u.sample[(s.rows-uncondFirst)*s.rowSize:], s.x)
		if err := u.run(ctx, t); err != nil {
			return fmt.Errorf("UNet at step %d of %d: %w", i+1, len(ts), err)
		}
		s.res.UNetRows += u.batch
		s.guide(u, uncondFirst)
		if err := s.sched.Step(i, s.eps, s.x[s.uncondFirst*s.rowSize:], s.denoised); err != nil {
			return fmt.Errorf("step %d of %d: %w", i+1, len(ts), err)
		}
		s.blend(i)
		// A lean step's source row is the replay's, not a prediction.
		if err := s.previews.step(i+1, len(ts), s.denoised[(uncondFirst-s.uncondFirst)*s.rowSize:], uncondFirst); err != nil {
			return err
		}
	}
	s.res.Timings.Steps = time.Since(start)
	s.res.Timings.StepCount = len(ts)
	s.syncSource(len(ts))
	return nil
}

// syncSource keeps the source row and the cache in step at step i: a
// replayed source row takes its stored latent, a recorded one is stored.
func (s *sampling) syncSource(i int) {
	row := s.x[:s.rowSize]
	if s.source != nil {
		copy(row, s.source.at(i))
	}
	if s.record != nil {
		copy(s.record.at(i), row)
	}
}

// guide combines each stepped row's unconditional output and conditional
// one from call u's batch, whose rows from uncondFirst on have an
// unconditional row (row r's at r − uncondFirst) and whose conditional
// half holds every row (row r's at rows − uncondFirst + r), by
// classifier-free guidance: eps = u + g·(c − u). A stepped row without an
// unconditional row in u (the replayed source's, in a lean step) takes
// its conditional output, which the replay overwrites.
func (s *sampling) guide(u *unetCall, uncondFirst int) {
	out, g, size := u.out, float32(s.j.guidance), s.rowSize
	condFirst := s.rows - uncondFirst
	for r := s.uncondFirst; r < s.rows; r++ {
		c := out[(condFirst+r)*size : (condFirst+r+1)*size]
		dst := s.eps[(r-s.uncondFirst)*size : (r-s.uncondFirst+1)*size]
		if r < uncondFirst {
			copy(dst, c)
			continue
		}
		un := out[(r-uncondFirst)*size : (r-uncondFirst+1)*size]
		for k := range dst {
			dst[k] = un[k] + g*(c[k]-un[k])
		}
	}
}

// finish decodes the final latents (reusing a cached source image), offers
// them as the final previews, stores a recorded source in the cache, and
// averages the heat maps over the steps.
func (s *sampling) finish(ctx context.Context) error {
	m, steps := s.e.manifest, len(s.sched.Timesteps())
	t0 := time.Now()
	decodeFrom := 0
	if s.source != nil && s.source.image != nil {
		decodeFrom = 1
	}
	images, err := s.decodeRows(ctx, decodeFrom)
	if err != nil {
		return err
	}
	s.res.Timings.Decode = time.Since(t0)
	for r, rgb := range images {
		s.res.Images = append(s.res.Images, Image{Row: r, Prompt: s.j.prompts[r], Width: m.Image.Width, Height: m.Image.Height, RGB: rgb})
	}
	s.previews.final(images, m.Image.Width, m.Image.Height, steps)
	s.res.Timings.FirstPreview = s.previews.first
	if s.record != nil {
		s.record.image = images[0]
		s.e.cache.put(s.key, s.record)
	}
	for _, o := range s.e.heatMapOutputs(s.j.opts) {
		s.res.HeatMaps = append(s.res.HeatMaps, s.e.heatMaps(s.j.prompts, s.unet.maps[o], steps)...)
	}
	return nil
}

// decodeRows decodes every row's final latent: the source's (unless it has
// an image already, decodeFrom 1) and the targets' with their own
// statistics in one batch, and the targets decode_norm marks with the
// source's in another, behind the source's latent, whose statistics they
// take (the source's own image stays the plain decoder's, as in every
// other run of it: the rewritten graph sums in another order).
func (s *sampling) decodeRows(ctx context.Context, decodeFrom int) ([][]byte, error) {
	var own, shared []int
	for r := decodeFrom; r < s.rows; r++ {
		if r > 0 && s.j.sourceNorms != nil && s.j.sourceNorms[r-1] {
			shared = append(shared, r)
		} else {
			own = append(own, r)
		}
	}
	images := make([][]byte, s.rows)
	if decodeFrom == 1 {
		images[0] = s.source.image
	}
	if len(own) > 0 {
		decoded, err := s.e.decode(ctx, s.latentRows(own), len(own))
		if err != nil {
			return nil, err
		}
		for i, r := range own {
			images[r] = decoded[i]
		}
	}
	if len(shared) > 0 {
		d, err := s.e.sourceNormDecoder()
		if err != nil {
			return nil, err
		}
		decoded, err := s.e.decodeWith(ctx, d, s.latentRows(append([]int{0}, shared...)), 1+len(shared))
		if err != nil {
			return nil, err
		}
		for i, r := range shared {
			images[r] = decoded[1+i]
		}
	}
	return images, nil
}

// latentRows is a copy of the final latents of rows, in that order.
func (s *sampling) latentRows(rows []int) []float32 {
	out := make([]float32, 0, len(rows)*s.rowSize)
	for _, r := range rows {
		out = append(out, s.x[r*s.rowSize:(r+1)*s.rowSize]...)
	}
	return out
}
