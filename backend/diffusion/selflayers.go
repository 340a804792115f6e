package diffusion

import (
	"cmp"
	"fmt"
	"slices"

	"reword/backend/graph"
	"reword/backend/ort"
	"reword/shared/edit"
)

// Self-replace layers per run. The instrumented UNet can self-replace in
// every self-attention layer; p2p_self_layers, fed once per run, says in
// which (graph.SelfLayersInput). A run chooses by a query-position limit
// (docs/algorithm.md, section 7).

// sdLatentSide is the latent side from which a model counts as SD-shaped
// for the photo default: 64 at SD 1.x's 512 px, and more for SD 2.1 and
// SDXL. PnPInversion's 1024 (32×32 layers at 512 px) was chosen for such
// models; on a smaller latent 1024 positions would take layers far finer
// relative to the image, so smaller models keep their manifest's default.
const sdLatentSide = 64

// checkSelfLayers checks that the UNet takes the per-layer weights, one per
// self layer its description lists.
func (e *Engine) checkSelfLayers(desc *graph.Description) error {
	want := len(desc.SelfLayers())
	in, ok := e.unet.Input(graph.SelfLayersInput)
	if !ok || in.DType != ort.Float32 || len(in.Shape) != 1 || in.Shape[0] != int64(want) {
		return fmt.Errorf("want a float32 input %q of shape [%d] (one weight per self-attention layer), the model has %v",
			graph.SelfLayersInput, want, e.unet.InputInfo())
	}
	return nil
}

// selfMaxTokens is the self-replace limit of a run: the spec's when it sets
// one, else the default (defaultSelfMaxTokens).
func (e *Engine) selfMaxTokens(r edit.Resolved) int {
	if r.SelfMaxTokens > 0 {
		return r.SelfMaxTokens
	}
	return e.defaultSelfMaxTokens(r.Image != "")
}

// defaultSelfMaxTokens is the self-replace limit of a run whose spec sets
// none: for a photo on a model with an SD-shaped latent, PnPInversion's;
// otherwise the manifest's default, or the instrumented UNet's (1/16 of
// the latent positions) when the manifest has none.
func (e *Engine) defaultSelfMaxTokens(photo bool) int {
	m := e.manifest
	switch {
	case photo && m.Latent.Height >= sdLatentSide && m.Latent.Width >= sdLatentSide:
		return edit.PhotoSelfMaxTokens
	case m.Defaults.SelfReplaceMaxTokens > 0:
		return m.Defaults.SelfReplaceMaxTokens
	}
	return e.desc.SelfReplaceMaxQueries
}

// describeSelfLayers adds to d what a client needs to offer self_max_tokens
// as a choice: the self-attention layers by query grid, coarsest first, and
// the default limits. Every grid's position count is a limit that takes
// exactly the layers up to it, so the grids are all the choices there are.
func (e *Engine) describeSelfLayers(d *edit.Defaults) {
	if e.desc == nil {
		return
	}
	count := map[graph.Size]int{}
	for _, l := range e.desc.SelfLayers() {
		count[l.Resolution]++
	}
	for grid, n := range count {
		d.SelfLayers = append(d.SelfLayers, edit.SelfLayerGroup{Grid: edit.Size{Width: grid.Width, Height: grid.Height}, Layers: n})
	}
	slices.SortFunc(d.SelfLayers, func(a, b edit.SelfLayerGroup) int {
		return cmp.Or(a.Tokens()-b.Tokens(), a.Grid.Width-b.Grid.Width)
	})
	d.SelfMaxTokens, d.PhotoSelfMaxTokens = e.defaultSelfMaxTokens(false), e.defaultSelfMaxTokens(true)
}

// selfLayersTensor makes the p2p_self_layers tensor of weights w, all zero
// when w is nil (no target, or no control).
func (e *Engine) selfLayersTensor(w []float32) (*ort.Tensor[float32], error) {
	n := len(e.desc.SelfLayers())
	if w == nil {
		w = make([]float32, n)
	}
	if len(w) != n {
		return nil, fmt.Errorf("%s: %d weights for %d self-attention layers", graph.SelfLayersInput, len(w), n)
	}
	return ort.NewTensor([]int64{int64(n)}, w)
}
