package model

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"reword/backend/scheduler"
	"reword/shared/edit"
)

// Family is what the models of one kind share, so that their manifests
// need not repeat it: the noise schedule they were trained with and the
// settings an edit of them starts from. A manifest names its family
// ("family"; SD1 when it names none) and overrides any of these values it
// states itself.
type Family struct {
	Name     string
	Schedule scheduler.Config
	Defaults Defaults
}

// Defaults are the settings an edit of a model starts from.
type Defaults struct {
	// Steps and GuidanceScale are the diffusion steps and the
	// classifier-free guidance scale.
	Steps         int
	GuidanceScale float64
	// Schedulers are the samplers the model runs, the default first.
	Schedulers []string
	// CrossReplace and SelfReplace are the Prompt-to-Prompt windows, as
	// fractions of the steps.
	CrossReplace, SelfReplace float64
	// CrossReplaceChanged is the cross window of the words a word swap
	// changes, when the model's differs from CrossReplace (the published
	// examples' {"default_": 1.0, "lion": 0.4}); nil: CrossReplace. No
	// family sets it: a manifest states it for the model it was measured
	// on (Reword's tiny model since meaning version 4). Links and stored
	// specs that leave cross_changed out take it, so giving a model one it
	// had not runs their edits differently: that needs edit.MeaningVersion
	// raised, with earlier specs read as they ran (edit.BeforeCrossChanged
	// for the tiny model's).
	CrossReplaceChanged *float64
	// BlendChanged: a spec that leaves blend_changed out blends each
	// target on the words it changes. No family sets it: a manifest
	// states it for the model it was measured on (Reword's tiny model
	// since meaning version 5). As with CrossReplaceChanged, turning it
	// on for a model runs the edits of earlier specs differently and
	// needs edit.MeaningVersion raised, with earlier specs read as they
	// ran (edit.BeforeBlendDefaults for the tiny model's).
	BlendChanged bool
	// BlendReweighted: a spec that leaves blend_reweighted out blends
	// each pure reweight on the words it reweights. No family sets it: a
	// manifest states it for the model it was measured on (the tiny model
	// since meaning version 6); as BlendChanged, a model that gets it runs
	// earlier specs' reweights differently and needs edit.MeaningVersion
	// raised (edit.BeforeReweightBlend for the tiny model's).
	BlendReweighted bool
	// DecodeNorm: the decode_norm a spec that leaves it out runs with
	// (edit.DecodeNorms; "": each image its own statistics). No
	// family sets it; as BlendChanged, a manifest states it for the model
	// it was measured on (the tiny model since meaning version 5), and a
	// model that gets one needs edit.MeaningVersion raised.
	DecodeNorm string
	// SelfReplaceMaxTokens: by default a run self-replaces in the
	// self-attention layers with at most this many query positions (a
	// spec's self_max_tokens chooses otherwise, and photo edits on
	// SD-shaped latents default to 1024); 0 = backend/graph's default
	// (16×16 at 512 px).
	SelfReplaceMaxTokens int
	// Norm is the first part of the steps in which an edit's targets
	// take the source's GroupNorm means when its spec sets no norm window
	// (docs/algorithm.md, 7.1); 0: never. No family sets it: a manifest
	// states it for the model it was measured on.
	Norm float64
}

// SD1 is Stable Diffusion 1.x and 2.x, and the models shaped like them
// (Reword's tiny model): SD 1.x's noise schedule as the Prompt-to-Prompt
// reference ran it, 50 DDIM steps at guidance 7.5, and the reference's
// windows (cross 0.8, self 0.4).
var SD1 = Family{
	Name:     "sd1",
	Schedule: scheduler.SD1(),
	Defaults: Defaults{
		Steps: 50, GuidanceScale: 7.5, Schedulers: scheduler.Names,
		CrossReplace: 0.8, SelfReplace: 0.4,
	},
}

// SDXL is Stable Diffusion XL (base): SD 1.x's noise schedule (SDXL was
// trained with the same betas), 50 steps at guidance 5 (diffusers'
// StableDiffusionXLPipeline default) and the reference's windows.
var SDXL = Family{
	Name:     "sdxl",
	Schedule: scheduler.SD1(),
	Defaults: Defaults{
		Steps: 50, GuidanceScale: 5, Schedulers: scheduler.Names,
		CrossReplace: 0.8, SelfReplace: 0.4,
	},
}

// families are the families a manifest may name.
var families = map[string]Family{SD1.Name: SD1, SDXL.Name: SDXL}

// LookupFamily returns the family called name.
func LookupFamily(name string) (Family, error) {
	f, ok := families[name]
	if !ok {
		names := make([]string, 0, len(families))
		for n := range families {
			names = append(names, n)
		}
		sort.Strings(names)
		return Family{}, fmt.Errorf("family %q is not a model family Reword knows (%s)", name, strings.Join(names, ", "))
	}
	return f, nil
}

// statedSchedule is a noise schedule as a manifest's "scheduler" object or
// a diffusers scheduler_config.json states it: a field left out keeps the
// family's value.
type statedSchedule struct {
	NumTrainTimesteps *int     `json:"num_train_timesteps"`
	BetaStart         *float64 `json:"beta_start"`
	BetaEnd           *float64 `json:"beta_end"`
	BetaSchedule      *string  `json:"beta_schedule"`
	PredictionType    *string  `json:"prediction_type"`
	TimestepSpacing   *string  `json:"timestep_spacing"`
	StepsOffset       *int     `json:"steps_offset"`
	SetAlphaToOne     *bool    `json:"set_alpha_to_one"`
}

// over returns base with the values s states.
func (s statedSchedule) over(base scheduler.Config) scheduler.Config {
	c := base
	setIf(&c.TrainTimesteps, s.NumTrainTimesteps)
	setIf(&c.BetaStart, s.BetaStart)
	setIf(&c.BetaEnd, s.BetaEnd)
	setIf(&c.StepsOffset, s.StepsOffset)
	setIf(&c.SetAlphaToOne, s.SetAlphaToOne)
	// An empty name, like a missing one, keeps the family's.
	if s.BetaSchedule != nil && *s.BetaSchedule != "" {
		c.BetaSchedule = scheduler.BetaSchedule(*s.BetaSchedule)
	}
	if s.PredictionType != nil && *s.PredictionType != "" {
		c.Prediction = scheduler.Prediction(*s.PredictionType)
	}
	if s.TimestepSpacing != nil && *s.TimestepSpacing != "" {
		c.Spacing = scheduler.Spacing(*s.TimestepSpacing)
	}
	return c
}

// statedDefaults are a manifest's "defaults" object: a field left out
// takes the family's value.
type statedDefaults struct {
	Steps                *int     `json:"steps"`
	GuidanceScale        *float64 `json:"guidance_scale"`
	Schedulers           []string `json:"schedulers"`
	CrossReplace         *float64 `json:"cross_replace"`
	CrossReplaceChanged  *float64 `json:"cross_replace_changed"`
	BlendChanged         *bool    `json:"blend_changed"`
	BlendReweighted      *bool    `json:"blend_reweighted"`
	DecodeNorm           *string  `json:"decode_norm"`
	SelfReplace          *float64 `json:"self_replace"`
	SelfReplaceMaxTokens *int     `json:"self_replace_max_tokens"`
	Norm                 *float64 `json:"norm"`
}

// over returns base with the values d states.
func (d statedDefaults) over(base Defaults) Defaults {
	out := base
	setIf(&out.Steps, d.Steps)
	setIf(&out.GuidanceScale, d.GuidanceScale)
	setIf(&out.CrossReplace, d.CrossReplace)
	if d.CrossReplaceChanged != nil {
		v := *d.CrossReplaceChanged
		out.CrossReplaceChanged = &v
	}
	setIf(&out.BlendChanged, d.BlendChanged)
	setIf(&out.BlendReweighted, d.BlendReweighted)
	setIf(&out.DecodeNorm, d.DecodeNorm)
	setIf(&out.SelfReplace, d.SelfReplace)
	setIf(&out.SelfReplaceMaxTokens, d.SelfReplaceMaxTokens)
	setIf(&out.Norm, d.Norm)
	out.Schedulers = slices.Clone(base.Schedulers)
	if d.Schedulers != nil {
		out.Schedulers = slices.Clone(d.Schedulers)
	}
	return out
}

func setIf[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

// validate reports the problems of resolved defaults, naming their fields.
func (d Defaults) validate(bad func(format string, a ...any)) {
	// The bounds are those every run's spec is held to (shared/edit), so
	// that a default a run would refuse is refused here, at load, naming
	// the field, instead of failing every run.
	if d.Steps < edit.MinSteps || d.Steps > edit.MaxSteps {
		bad("defaults.steps is %d; want %d..%d", d.Steps, edit.MinSteps, edit.MaxSteps)
	}
	if !(d.GuidanceScale >= edit.MinGuidance && d.GuidanceScale <= edit.MaxGuidance) {
		bad("defaults.guidance_scale is %v; want %v..%v", d.GuidanceScale, edit.MinGuidance, edit.MaxGuidance)
	}
	if !(d.CrossReplace >= 0 && d.CrossReplace <= 1 && d.SelfReplace >= 0 && d.SelfReplace <= 1) {
		bad("defaults: cross_replace and self_replace are fractions in [0, 1], got %v and %v", d.CrossReplace, d.SelfReplace)
	}
	if c := d.CrossReplaceChanged; c != nil && !(*c >= 0 && *c <= 1) {
		bad("defaults: cross_replace_changed is a fraction in [0, 1], got %v", *c)
	}
	if n := d.DecodeNorm; n != "" && !slices.Contains(edit.DecodeNorms, n) {
		bad("defaults.decode_norm is %q; want one of %s", n, strings.Join(edit.DecodeNorms, ", "))
	}
	if !(d.Norm >= 0 && d.Norm <= 1) {
		bad("defaults: norm is a fraction in [0, 1] (0: never), got %v", d.Norm)
	}
	if d.SelfReplaceMaxTokens < 0 {
		bad("defaults: self_replace_max_tokens is %d; want ≥ 0 (0 = the default layers)", d.SelfReplaceMaxTokens)
	}
	if len(d.Schedulers) == 0 {
		bad("defaults: schedulers is empty; want one or more of %s", strings.Join(scheduler.Names, ", "))
	}
	for _, s := range d.Schedulers {
		if !slices.Contains(scheduler.Names, s) {
			bad("defaults: scheduler %q is not one of %s", s, strings.Join(scheduler.Names, ", "))
		}
	}
}
