// Package edit defines the EditSpec: everything that determines one Reword
// edit (prompts, seed, sampling settings, Prompt-to-Prompt controls, an
// optional source photo), its public JSON form, its validation against a
// model's defaults, and the shareable edit link that carries it in a URL.
//
// The JSON form is public: links, the WebSocket protocol and the CLI all use
// it, so its field names never change within a link version. Omitted fields
// take the model's defaults (see Defaults); Resolve fills them in and
// validates the result. Decoding is strict: unknown fields, trailing data and
// oversized input are errors.
package edit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"unicode/utf8"

	"reword/shared/align"
)

// Limits of a spec. Prompts beyond CLIP's 77 tokens are allowed (the UI shows
// which words the model ignores); the byte limit only bounds work and memory.
const (
	MaxTargets     = 4        // target prompts edited in one run
	MaxPromptBytes = 2048     // per prompt, UTF-8
	MaxWordBytes   = 100      // per word in cross_words, reweights, blend
	MaxWordEntries = 32       // entries in each of cross_words, reweights, blend
	MinSteps       = 1        // diffusion steps
	MaxSteps       = 150      //
	MinGuidance    = 0.0      // classifier-free guidance scale
	MaxGuidance    = 30.0     //
	MinReweight    = -10.0    // attention reweight factor
	MaxReweight    = 10.0     //
	UIMinReweight  = -2.0     // the paper's range, used by the editor's sliders
	UIMaxReweight  = 2.0      //
	MaxSpecBytes   = 16 << 10 // JSON form of a spec
	// MaxSelfMaxTokens bounds self_max_tokens: the query positions of a
	// 1024×1024 latent, more than any model's largest layer, so every
	// useful value fits.
	MaxSelfMaxTokens = 1 << 20
	// PhotoSelfMaxTokens is the self-replace limit a photo edit takes by
	// default on a model with an SD-shaped latent (64×64 or more):
	// PnPInversion's, the 32×32 layers and coarser at 512 px.
	PhotoSelfMaxTokens = 1024
)

// Inversion methods for editing a photo (docs/algorithm.md, section 8).
const (
	InversionDirect = "direct" // Direct Inversion (PnP Inversion, Ju et al. 2024); the default
	InversionNPI    = "npi"    // negative-prompt inversion (Miyake et al. 2023)
	InversionDDIM   = "ddim"   // plain DDIM inversion (the "ddim+p2p" baseline)
)

// Where a spec's targets take their VAE-decoder GroupNorm statistics
// (Spec.DecodeNorm).
const (
	DecodeNormOwn    = "own"    // each image its own, as the decoder was trained
	DecodeNormSource = "source" // the source image's, for every target
	// DecodeNormSwaps is the source image's for the targets that keep
	// the source's words (word swaps and reweights), each its own for
	// those that add or remove words, which may repaint the whole image
	// (an added "on grass"): decoded with the source's statistics a new
	// background is normalised as the old one was.
	DecodeNormSwaps = "swaps"
)

// DecodeNorms lists the accepted decode_norm values, the one a model
// without a default of its own runs first.
var DecodeNorms = []string{DecodeNormOwn, DecodeNormSource, DecodeNormSwaps}

// Inversions lists the accepted inversion methods, the default first.
var Inversions = []string{InversionDirect, InversionNPI, InversionDDIM}

// Spec is one edit as a user or client states it. Pointer and empty fields
// are "omitted" and take the model's defaults when resolved.
type Spec struct {
	// Source is the prompt of the image being edited.
	Source string `json:"source"`
	// Targets are the reworded prompts, 1 to MaxTargets, each rendered as
	// one variant of the edit. A target equal to Source is a pure reweight.
	Targets []string `json:"targets"`
	// Kinds is the edit kind chosen for each target, in the order of
	// Targets: "auto" (the default: a word swap when the target has as
	// many words as the source, a refinement otherwise), "replace" or
	// "refine" (align.Choice). A target without an entry is auto; trailing
	// auto entries are left out.
	Kinds []align.Choice `json:"kinds,omitempty"`
	// Negative is the negative prompt ("" = none).
	Negative string `json:"negative,omitempty"`
	// Seed picks the initial noise; required so that an edit is reproducible.
	Seed *uint64 `json:"seed,omitempty"`
	// Steps is the number of diffusion steps, MinSteps..MaxSteps.
	Steps *int `json:"steps,omitempty"`
	// Guidance is the classifier-free guidance scale, MinGuidance..MaxGuidance.
	Guidance *float64 `json:"guidance,omitempty"`
	// Width and Height are the image size in pixels; the model lists the
	// sizes it supports.
	Width  *int `json:"width,omitempty"`
	Height *int `json:"height,omitempty"`
	// Scheduler names the sampler, one the model supports ("ddim").
	Scheduler string `json:"scheduler,omitempty"`
	// Model is the model id; it must be the model the defaults describe.
	Model string `json:"model,omitempty"`
	// Cross is the part of the steps during which the targets' cross
	// attention is replaced by the source's (Prompt-to-Prompt's
	// cross_replace_steps).
	Cross *Window `json:"cross,omitempty"`
	// CrossChanged overrides Cross for the words each word-swap target
	// swaps (Prompt-to-Prompt's {"default_": cross, "lion": w} without
	// naming the word): the other tokens keep the source's maps over
	// Cross, the swapped words draw their own after CrossChanged.
	// Omitted: the model's default (Defaults.CrossChanged), and for a
	// model without one, Cross.
	CrossChanged *Window `json:"cross_changed,omitempty"`
	// CrossWords overrides Cross and CrossChanged for the tokens of
	// single target words.
	CrossWords map[string]Window `json:"cross_words,omitempty"`
	// Self is the part of the steps during which the targets' self attention
	// is replaced by the source's (self_replace_steps).
	Self *Window `json:"self,omitempty"`
	// SelfMaxTokens chooses the self-attention layers Self applies to:
	// those with at most this many query positions at the model's
	// reference latent (256: the 16×16 layers and coarser at 512 px),
	// 1..MaxSelfMaxTokens. Omitted, the model's default applies, which for
	// a photo on a model with an SD-shaped latent is PhotoSelfMaxTokens.
	SelfMaxTokens *int `json:"self_max_tokens,omitempty"`
	// Reweights scales the attention to words of the targets, MinReweight..
	// MaxReweight (negative values push the concept away).
	Reweights map[string]float64 `json:"reweights,omitempty"`
	// Blend holds each target's local blend, in the order of Targets: a
	// target with blend words changes only where they are (see Blend); a
	// target without an entry, or with an empty one, is not blended
	// unless BlendChanged. At most one entry per target; trailing empty
	// entries are left out.
	Blend []Blend `json:"blend,omitempty"`
	// BlendChanged blends every target that changes words and has no
	// blend words of its own on the words it changes: the source's
	// swapped or dropped words and its swapped or added ones, as the
	// editor's diff marks them (Prompt-to-Prompt's local blend given the
	// reworded words), keeping its entry's excluded words. A pure reweight
	// changes no word and is not blended. Omitted: the model's default
	// (Defaults.BlendChanged).
	BlendChanged *bool `json:"blend_changed,omitempty"`
	// BlendReweighted blends every pure reweight (a target that is the
	// source prompt, its words reweighted, its kind left to the prompts:
	// one forced to replace or refine is not a reweight) that has no blend words of its
	// own on the words it reweights, keeping its entry's excluded words: a
	// reweight changes those words' attention alone, and outside their
	// maps the picture stays the source's. Omitted: the model's default
	// (Defaults.BlendReweighted).
	BlendReweighted *bool `json:"blend_reweighted,omitempty"`
	// ReplaceTail is how a word swap maps the tokens after its last
	// swapped word: "aligned" (the default, left out) or "reference", the
	// published code's mapping, to reproduce published numbers.
	ReplaceTail string `json:"replace_tail,omitempty"`
	// KeepSourceText gives every target the source's text states at the
	// positions of the words it kept (BOS, EOS and padding included;
	// align.Controller.TextSource), so that only the reworded words'
	// states differ from the source's. Off by default: it is an opt-in
	// for text encoders that fold every word into every later state (a
	// causal encoder's EOS and padding sum up the whole prompt), whose
	// unchanged words then carry the edit into the whole image.
	KeepSourceText bool `json:"keep_source_text,omitempty"`
	// Norm is the part of the steps during which every target's GroupNorms
	// centre each group on the source's mean instead of their own (the
	// target's conditional row on the source's conditional row, its
	// unconditional row on the source's; each keeps its own variance), so
	// the reworded words change what the features are but not each
	// group's overall level, which otherwise carries the change into the
	// background. Links before version 3 shared the variance too.
	// Omitted: the model's default (Defaults.Norm); empty: never. It needs
	// the source denoised in the same batch (a cached source still is, at
	// one more row in each of the window's steps), and a UNet with float32
	// GroupNorms (not an fp16 export's).
	Norm *Window `json:"norm,omitempty"`
	// DecodeNorm is where the targets' VAE-decoder GroupNorms take their
	// statistics: DecodeNormOwn (each image its own, as the decoder was
	// trained), DecodeNormSource (the source image's, decoded in the same
	// batch) or DecodeNormSwaps (the source's for word swaps and
	// reweights only); left out, the model's default (Defaults.DecodeNorm;
	// own where the model states none). A decoder's GroupNorms read the
	// whole image, so with its own statistics an edit of one object
	// decodes every pixel a little differently, and a local blend's
	// background, whose latent is the source's, decodes to another
	// background; with the source's, latent cells the edit left as the
	// source's decode to the source's pixels wherever the decoder's
	// convolutions read only such cells (a decoder with attention, as
	// Stable Diffusion's, still mixes the whole image there).
	DecodeNorm string `json:"decode_norm,omitempty"`
	// Image is the content hash (SHA-256, 64 lowercase hex digits) of an
	// uploaded photo to edit instead of generating the source image.
	Image string `json:"image,omitempty"`
	// Inversion is how the photo is inverted; only with Image.
	Inversion string `json:"inversion,omitempty"`
}

// Window is a part of the diffusion run as fractions of the steps:
// replacement happens in [Start, End). In JSON it is a fraction f, meaning
// [0, f), or a pair [start, end].
type Window struct {
	Start, End float64
}

// Fraction returns the window [0, f).
func Fraction(f float64) Window { return Window{0, f} }

// MarshalJSON writes the short form f when the window starts at 0.
func (w Window) MarshalJSON() ([]byte, error) {
	if w.Start == 0 && !math.Signbit(w.Start) {
		return json.Marshal(w.End)
	}
	return json.Marshal([2]float64{w.Start, w.End})
}

// UnmarshalJSON accepts a fraction or a [start, end] pair.
func (w *Window) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if string(b) == "null" {
		return errors.New("window null: want a fraction like 0.8 or a pair [start, end] like [0.2, 0.8]")
	}
	if len(b) > 0 && b[0] == '[' {
		var pair []float64
		if err := json.Unmarshal(b, &pair); err != nil || len(pair) != 2 {
			return fmt.Errorf("window %s: want a fraction like 0.8 or a pair [start, end] like [0.2, 0.8]", abbreviate(string(b)))
		}
		*w = Window{pair[0], pair[1]}
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("window %s: want a fraction like 0.8 or a pair [start, end] like [0.2, 0.8]", abbreviate(string(b)))
	}
	*w = Window{0, f}
	return nil
}

// abbreviate shortens client text that an error or a problem quotes to 40
// bytes (cut at a character boundary), so that no reply grows with what a
// client sent.
func abbreviate(text string) string {
	const maxBytes = 40
	if len(text) <= maxBytes {
		return text
	}
	cut := maxBytes
	for cut > maxBytes-utf8.UTFMax && !utf8.RuneStart(text[cut]) {
		cut--
	}
	return text[:cut] + "…"
}

// ParseSpec decodes the JSON form of a spec strictly: exactly one JSON
// object, at most MaxSpecBytes, no unknown fields. It does not validate the
// values; call Validate or Resolve with the model's defaults.
func ParseSpec(data []byte) (Spec, error) {
	if len(data) > MaxSpecBytes {
		return Spec{}, fmt.Errorf("edit spec is %d bytes; the limit is %d", len(data), MaxSpecBytes)
	}
	var s Spec
	if err := decodeStrict(data, &s); err != nil {
		return Spec{}, err
	}
	s.normalize()
	return s, nil
}

// decodeStrict decodes exactly one JSON object without unknown fields.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("edit spec: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("edit spec: unexpected data after the JSON object")
	}
	return nil
}

// MarshalJSON is the canonical JSON form: fields in declaration order, map
// keys sorted, omitted fields left out, empty collections omitted.
func (s Spec) MarshalJSON() ([]byte, error) {
	s.normalize()
	type plain Spec // no methods: avoids recursion
	return json.Marshal(plain(s))
}

// normalize makes empty collections nil, so that a spec and its decoded
// encoding are deeply equal.
func (s *Spec) normalize() {
	if len(s.CrossWords) == 0 {
		s.CrossWords = nil
	}
	if len(s.Reweights) == 0 {
		s.Reweights = nil
	}
	s.normalizeBlend()
	s.normalizeKinds()
}

// Clone returns a deep copy of s: editing it never changes s.
func (s Spec) Clone() Spec {
	c := s
	c.Targets = slices.Clone(s.Targets)
	c.Kinds = slices.Clone(s.Kinds)
	c.Blend = cloneBlends(s.Blend)
	c.Reweights = maps.Clone(s.Reweights)
	c.CrossWords = maps.Clone(s.CrossWords)
	c.Seed, c.Steps, c.Width, c.Height = clonePtr(s.Seed), clonePtr(s.Steps), clonePtr(s.Width), clonePtr(s.Height)
	c.Guidance, c.Cross, c.Self, c.Norm = clonePtr(s.Guidance), clonePtr(s.Cross), clonePtr(s.Self), clonePtr(s.Norm)
	c.CrossChanged, c.BlendChanged, c.BlendReweighted = clonePtr(s.CrossChanged), clonePtr(s.BlendChanged), clonePtr(s.BlendReweighted)
	c.SelfMaxTokens = clonePtr(s.SelfMaxTokens)
	return c
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
