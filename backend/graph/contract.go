// Package graph instruments a Stable-Diffusion-style ONNX UNet for
// Prompt-to-Prompt attention control: it finds every attention Softmax,
// splices the edit after it, adds the control inputs and the attention-map
// outputs, and describes what it did.
//
// # Batch layout
//
// The instrumented UNet runs the source prompt and E edit targets in one
// classifier-free-guidance batch. The last 1+E rows of the batch are the
// conditional rows: the cond source row, then the E cond target rows, in the
// order of the controls' first axis. Every row before them is left alone.
// The engine lays a step out as
//
//	[uncond source, uncond target 1..E, cond source, cond target 1..E]
//
// (batch 2(1+E); row 1+E is the cond source, rows 2+E.. the cond targets).
// Because the graph locates the cond rows from the end of the batch (the
// batch size B comes from the sample input, E from the controls), a batch
// that drops the uncond source row, B = 2E+1, works unchanged: that is the
// layout of a source-cache mode that replays stored source latents.
//
// # Control inputs
//
// All float32 whatever the model's precision (they are cast inside):
//
//   - p2p_cross_w [E, T, T] and p2p_cross_c [E, T]: in every cross-attention
//     layer, target e's probabilities become A_src·W_e + A_tgt ⊙ c_e, with
//     A [heads·queries, T] rows and c broadcast over heads and queries
//     (T: text tokens, 77 for CLIP). When all of W is 0 and all of c is 1
//     (neutral), a layer whose probabilities are float32 skips the edit (an
//     If node), which gives the same values.
//   - p2p_self_w [E] and p2p_self_layers [L]: in self-attention layer k
//     (the k-th of Description.SelfLayers), target e's attention output
//     becomes s·(A_src·V_tgt) + (1−s)·(A_tgt·V_tgt) with s = s_e·l_k: the
//     source's self-attention pattern applied to the target's values.
//     s_e and l_k in [0, 1]. l is fed once per run: it chooses the layers
//     (Description.SelfLayerWeights; by default those with at most
//     Description.SelfReplaceMaxQueries query positions), so the layers
//     change without instrumenting again. A layer whose l_k or every s_e
//     is 0 skips the edit (an If node), so it costs nothing.
//   - p2p_norm_w [E]: at every GroupNorm (torch exports it as Reshape,
//     InstanceNormalization, Reshape, affine), target e's rows become
//     g·ŷ + (1−g)·y, g = g_e in [0, 1], where y is the row's own
//     normalisation and ŷ the same row centred on the mean of each group
//     in its source row and scaled by its own variance: the conditional
//     target row on the cond source row's mean, the unconditional on the
//     uncond source row's, so that classifier-free guidance never
//     subtracts rows centred on different means. It needs the whole standard
//     layout: a batch without the uncond source row (B ≠ 2(1+E)) is left
//     alone whatever g says. Every GroupNorm skips the edit when every
//     g_e is 0 (an If node). Only float32 GroupNorms take it (not an fp16
//     export's); Description.NormLayers counts those it reaches.
//
// W = 0, c = 1, s = 0, g = 0 is an exact no-op: the instrumented model then matches
// the original bit for bit in float32. W = I, c = 0 copies the source's
// cross-attention maps into every target exactly. E may be 0 (plain
// generation: the controls are then empty tensors).
//
// # Outputs
//
// Besides the UNet's own outputs, one p2p_maps_div<F> [1+E, N, T] per
// cross-attention resolution holds the cross-attention probabilities of the
// cond rows (source first), averaged over heads and over the cross-attention
// layers that run at 1/F of the latent's height and width (N = (H/F)·(W/F)
// query positions). The input p2p_maps_wanted [M] (one float32 per maps
// output, in Description.Maps order) asks for them: an output whose entry is
// 0 is empty ([0, N, T]) and costs no head mean, so a run that reads no
// maps (plain generation without heat maps) does not pay for them. The maps are taken after the edit, so target rows show
// the attention that shaped them. Description.BlendMaps names the one local
// blending reads: by default the stride Prompt-to-Prompt uses (16×16 at
// 512 px, F = 4), or the nearest coarser one the model has (see
// Options.MapsQueries). The finer ones serve attention heat maps.
//
// # Precision
//
// Every input and output of the instrumented UNet is float32 (or the
// export's integer timestep): an fp16 export's float16 sample, timestep,
// encoder_hidden_states and output get Casts at the graph boundary
// (Float32IO; Description.Float16IO lists them). The cross-attention edit
// runs in float32 whatever the Softmax's precision; the self-attention
// edit in the precision of the layer's P·V product.
//
// Description lists every attention layer (name, kind, resolution, heads,
// edited or not) and is stored in the instrumented model's metadata, where
// ReadDescription finds it.
package graph

import (
	"errors"
	"fmt"
	"math"
)

// Names of the UNet inputs every diffusers export has.
const (
	SampleInput       = "sample"
	TimestepInput     = "timestep"
	HiddenStatesInput = "encoder_hidden_states"
)

// Names the instrumentation adds.
const (
	// CrossWeightsInput is W: float32 [E, T, T].
	CrossWeightsInput = "p2p_cross_w"
	// CrossKeepInput is c: float32 [E, T].
	CrossKeepInput = "p2p_cross_c"
	// SelfWeightInput is the per-target self-replace weight: float32 [E].
	SelfWeightInput = "p2p_self_w"
	// NormWeightInput is the per-target weight of the source's GroupNorm
	// means: float32 [E].
	NormWeightInput = "p2p_norm_w"
	// SelfLayersInput is the per-layer self-replace weight: float32 [L],
	// one per self-attention layer of Description.SelfLayers, in order.
	SelfLayersInput = "p2p_self_layers"
	// MapsWantedInput asks for the maps outputs: float32 [M], one per
	// output of Description.Maps, in order; a positive entry computes that
	// output, 0 leaves it empty.
	MapsWantedInput = "p2p_maps_wanted"
	// MapsOutputPrefix starts the names of the attention-map outputs; the
	// stride F (a power of two) follows.
	MapsOutputPrefix = "p2p_maps_div"
	// NodeMarker is part of the name of every node the instrumentation
	// inserts (profilers use it to attribute time).
	NodeMarker = "/p2p/"
	// ThenMarker and ElseMarker are part of the names of the nodes inside
	// the branches of the If nodes the instrumentation inserts. ONNX
	// Runtime's profiler times such a node on its own and again within its
	// If node's time, so a profile's totals must skip them.
	ThenMarker = NodeMarker + "then/"
	ElseMarker = NodeMarker + "else/"
	// NormScope follows a GroupNorm's InstanceNormalization node name, and
	// the GroupNorm's index, in the names of the nodes its edit inserts
	// (before NodeMarker, where an attention edit has its layer's name).
	NormScope = "/p2p_norm_"
	// MovedMarker is part of the names of the branch nodes that compute an
	// original node of the UNet (a float32 layer's Softmax or P·V MatMul, a
	// GroupNorm's InstanceNormalization,
	// which the branches take over so that the untaken edit costs no copy):
	// their time is the original graph's work, not the edit's.
	MovedMarker = "moved_"
	// DescriptionKey is the model metadata key that holds the Description
	// as JSON.
	DescriptionKey = "reword.p2p.description"
)

// LayoutVersion numbers the instrumented graph's interface: its inputs,
// its outputs and what they mean. A program reading an instrumented file
// must check it (Description.CheckLayout): a file of another layout runs
// but its outputs would be misread. Layout 2 has a maps output per
// cross-attention resolution; files without a recorded layout have one.
// Layout 3 adds SelfLayersInput: every self-attention layer can take the
// self-replace edit, chosen per run (layout 2 fixed the layers). Layout 4
// adds MapsWantedInput: a maps output is computed only when a run asks.
// Layout 5 adds NormWeightInput: the targets' GroupNorms can take the
// source's statistics, mean and variance. Layout 6 takes the source's
// mean alone, the same input with another meaning.
const LayoutVersion = 6

// ErrLayout reports an instrumented file of another LayoutVersion.
var ErrLayout = errors.New("the instrumented UNet has another interface than this build expects")

// File names inside a diffusers-layout model folder.
const (
	UNetDir          = "unet"
	OriginalFile     = "model.onnx"
	InstrumentedFile = "model.p2p.onnx"
)

// MapsOutputName is the name of the maps output for layers running at 1/stride
// of the latent's height and width.
func MapsOutputName(stride int) string { return fmt.Sprintf("%s%d", MapsOutputPrefix, stride) }

// Batch returns the UNet batch size for a step with the given number of edit
// targets in the standard layout: uncond and cond rows for the source and
// each target.
func Batch(targets int) int { return 2 * (1 + targets) }

// Controls are the values fed to the control inputs for one UNet call.
type Controls struct {
	Targets int // E
	Tokens  int // T
	// CrossW is [Targets, Tokens, Tokens], row-major: CrossW[e][w][n] weights
	// source token w's attention into target token n.
	CrossW []float32
	// CrossC is [Targets, Tokens]: how much of each target token's own
	// attention is kept.
	CrossC []float32
	// SelfW is [Targets]: the self-replace weight of each target.
	SelfW []float32
	// NormW is [Targets]: the weight of the source's GroupNorm means in
	// each target's.
	NormW []float32
}

// NoOpControls returns controls that leave every target unedited (W = 0,
// c = 1, s = 0, g = 0).
func NoOpControls(targets, tokens int) Controls {
	c := Controls{
		Targets: targets,
		Tokens:  tokens,
		CrossW:  make([]float32, targets*tokens*tokens),
		CrossC:  make([]float32, targets*tokens),
		SelfW:   make([]float32, targets),
		NormW:   make([]float32, targets),
	}
	for i := range c.CrossC {
		c.CrossC[i] = 1
	}
	return c
}

// Validate checks the sizes against Targets and Tokens, that every value is
// finite and that self-replace and GroupNorm weights lie in [0, 1]. The graph itself does
// not check: mismatched E between the inputs would broadcast silently.
func (c Controls) Validate() error {
	if c.Targets < 0 || c.Tokens <= 0 {
		return fmt.Errorf("controls: need targets ≥ 0 and tokens > 0, got %d targets, %d tokens", c.Targets, c.Tokens)
	}
	for _, f := range []struct {
		name string
		v    []float32
		want int
	}{
		{CrossWeightsInput, c.CrossW, c.Targets * c.Tokens * c.Tokens},
		{CrossKeepInput, c.CrossC, c.Targets * c.Tokens},
		{SelfWeightInput, c.SelfW, c.Targets},
		{NormWeightInput, c.NormW, c.Targets},
	} {
		if len(f.v) != f.want {
			return fmt.Errorf("controls: %s has %d values, want %d for %d targets × %d tokens", f.name, len(f.v), f.want, c.Targets, c.Tokens)
		}
		for i, x := range f.v {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return fmt.Errorf("controls: %s[%d] is %v", f.name, i, x)
			}
		}
	}
	for _, f := range []struct {
		name string
		v    []float32
	}{{SelfWeightInput, c.SelfW}, {NormWeightInput, c.NormW}} {
		for e, w := range f.v {
			if w < 0 || w > 1 {
				return fmt.Errorf("controls: %s[%d] = %v is outside [0, 1]", f.name, e, w)
			}
		}
	}
	return nil
}

// Shapes returns the tensor shapes of CrossW and CrossC, and of SelfW
// and NormW (both [E]).
func (c Controls) Shapes() (crossW, crossC, perTarget []int64) {
	e, t := int64(c.Targets), int64(c.Tokens)
	return []int64{e, t, t}, []int64{e, t}, []int64{e}
}
