package diffusion

import (
	"context"
	"fmt"
	"slices"
	"time"

	"reword/shared/align"
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
		j.selfLayers = e.desc.SelfLayerWeights(e.selfMaxTokens(r))
		if r.Norm.End > r.Norm.Start {
			if !e.TakesNorm() {
				return nil, edit.Problems{{Field: "norm", Message: fmt.Sprintf("cannot apply: the UNet of model %s has no float32 GroupNorm "+
					"(InstanceNormalization in its export; an fp16 export's run in float16, an export at opset 18 or later has GroupNormalization) "+
					"whose means the targets could share; leave it out for this model", e.manifest.ID())}}
			}
			j.sourceRows = true
		}
		if r.KeepSourceText {
			for t := range ctrl.Targets() {
				j.textFrom = append(j.textFrom, ctrl.TextSource(t))
			}
		}
		if j.sourceNorms = sourceNormTargets(r.DecodeNorm, ctrl); slices.Contains(j.sourceNorms, true) {
			if err := e.checkSourceNorms(); err != nil {
				return nil, err
			}
		}
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

// sourceNormTargets marks the targets that decode_norm decodes with the
// source's statistics: every one, or the word swaps and reweights; nil
// when none does.
func sourceNormTargets(decodeNorm string, ctrl *align.Controller) []bool {
	if decodeNorm != edit.DecodeNormSource && decodeNorm != edit.DecodeNormSwaps {
		return nil
	}
	marks := make([]bool, ctrl.Targets())
	for t := range marks {
		marks[t] = decodeNorm == edit.DecodeNormSource || ctrl.Kind(t) != align.Refine
	}
	return marks
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
	// selfLayers are the per-layer self-replace weights (nil: none).
	selfLayers []float32
	// sourceRows keeps both of the source's rows in the UNet calls of the
	// norm window's steps even when its latents are replayed: the norm
	// control's targets take their GroupNorm means from them.
	sourceRows bool
	// textFrom, when set, gives each target the source's text states at
	// the positions of the words it kept (align.Controller.TextSource, one
	// entry per target): the spec's keep_source_text.
	textFrom [][]int
	blend    *localBlend // nil: no local blending
	// sourceNorms marks the targets that decode with the source's
	// VAE-decoder GroupNorm statistics (the spec's decode_norm), one entry
	// per target; nil: none.
	sourceNorms []bool
	origin      origin
}

// origin is where a run starts and how its source row is obtained. A
// generation (and an edit of a generated image) starts every row from
// the seed's noise, denoises the source row with the targets, and may
// take it from the source cache, or store it there; a photo's inversion
// method sets it up otherwise (inversionMethods).
type origin struct {
	// noise is x_T of every row; nil draws it from the seed.
	noise []float32
	// replay gives the source row's latent at every step instead of
	// denoising it (Direct Inversion's stored trajectory).
	replay *sourceEntry
	// uncondSource makes the source prompt every row's unconditional
	// prompt (negative-prompt inversion).
	uncondSource bool
	// photo marks a source that is not a generated image: the source
	// cache of generations neither serves nor stores it.
	photo bool
}

// run executes a job: the stages are set up (prepare), the rows denoised
// step by step (denoise), then decoded (finish).
func (e *Engine) run(ctx context.Context, j *job, onPreview func(Preview)) (*Result, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	start := time.Now()
	pv := newPreviews(e, onPreview, start)
	defer pv.close()
	r, err := e.prepare(ctx, j, pv)
	if err != nil {
		return nil, err
	}
	defer r.close()
	if err := r.denoise(ctx); err != nil {
		return nil, err
	}
	if err := r.finish(ctx); err != nil {
		return nil, err
	}
	r.res.Timings.Total = time.Since(start)
	return r.res, nil
}
