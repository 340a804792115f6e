package edit

import (
	"fmt"
	"strings"
)

// Size is an image size in pixels.
type Size struct {
	Width, Height int
}

func (s Size) String() string { return fmt.Sprintf("%dx%d", s.Width, s.Height) }

// Defaults describes one model for specs: the values omitted fields take and
// the values it accepts. The server takes them from the model's manifest and
// its family (backend/model), and tells clients in its hello.
type Defaults struct {
	// Model is the model id a spec may name.
	Model string
	// Sizes are the image sizes the model generates; the first is the default.
	Sizes []Size
	// Schedulers are the samplers the model runs; the first is the default.
	Schedulers []string
	Steps      int
	Guidance   float64
	// Cross and Self are the default cross- and self-attention replacement
	// windows, Norm the default norm window (empty: never).
	Cross, Self, Norm Window
	// CrossChanged is the default cross window of the words a word swap
	// changes; nil: Cross, the window of every token.
	CrossChanged *Window
	// BlendChanged is whether a spec that leaves blend_changed out blends
	// its targets on the words they change.
	BlendChanged bool
	// BlendReweighted is whether a spec that leaves blend_reweighted out
	// blends its pure reweights on the words they reweight.
	BlendReweighted bool
	// DecodeNorm is the decode_norm a spec that leaves it out runs with;
	// "": each image its own statistics.
	DecodeNorm string
	// SelfLayers are the model's self-attention layers that self_max_tokens
	// chooses from, grouped by query positions at the reference latent,
	// finest last. Empty when the server does not say (a model without an
	// instrumented UNet yet, or an older server): validation never needs
	// them, an editor shows them as the choices of the setting.
	SelfLayers []SelfLayerGroup
	// SelfMaxTokens is the self-replace limit a run takes when its spec
	// sets none, and PhotoSelfMaxTokens the one a photo edit takes; 0 when
	// not known.
	SelfMaxTokens, PhotoSelfMaxTokens int
}

// SelfLayerGroup is the model's self-attention layers of one query grid.
type SelfLayerGroup struct {
	// Grid is the query grid at the reference latent; its Width×Height
	// positions are the self_max_tokens value that takes these layers and
	// every coarser one.
	Grid Size
	// Layers is how many self-attention layers have this grid.
	Layers int
}

// Tokens is the query positions of the group's layers.
func (g SelfLayerGroup) Tokens() int { return g.Grid.Width * g.Grid.Height }

// SwappedWordsCross is the cross window the words a word swap of s
// changes run with: the spec's cross_changed, else the model's default
// for it, else the cross window every token takes (the spec's, else the
// model's). The one statement of that order, for those that show it
// (Resolve keeps an unset one unset, which means the same).
func (d Defaults) SwappedWordsCross(s Spec) Window {
	switch {
	case s.CrossChanged != nil:
		return *s.CrossChanged
	case d.CrossChanged != nil:
		return *d.CrossChanged
	case s.Cross != nil:
		return *s.Cross
	}
	return d.Cross
}

// DefaultSelfMaxTokens is the self-replace limit a spec without
// self_max_tokens runs with: PhotoSelfMaxTokens for a photo edit,
// SelfMaxTokens otherwise (0 when the server did not say).
func (d Defaults) DefaultSelfMaxTokens(photo bool) int {
	if photo {
		return d.PhotoSelfMaxTokens
	}
	return d.SelfMaxTokens
}

// SelfLayersWithin says which self-attention layers a limit of n query
// positions takes: how many of the model's, of how many, and in words
// ("16×16 and coarser", "all", "none": the grids are the reference
// latent's, so the words hold at any image size).
func (d Defaults) SelfLayersWithin(n int) (layers, of int, words string) {
	finest, coarsest := -1, -1
	for i, g := range d.SelfLayers {
		of += g.Layers
		if coarsest < 0 || g.Tokens() < d.SelfLayers[coarsest].Tokens() {
			coarsest = i
		}
		if g.Tokens() <= n {
			layers += g.Layers
			if finest < 0 || g.Tokens() > d.SelfLayers[finest].Tokens() {
				finest = i
			}
		}
	}
	switch {
	case of == 0:
		return 0, 0, ""
	case layers == 0:
		return 0, of, "none"
	case len(d.SelfLayers) == 1:
		return layers, of, gridWords(d.SelfLayers[0].Grid)
	case finest == coarsest:
		return layers, of, gridWords(d.SelfLayers[finest].Grid) + " only"
	}
	return layers, of, gridWords(d.SelfLayers[finest].Grid) + " and coarser"
}

// gridWords writes a grid as people read it: 16×16.
func gridWords(s Size) string {
	return strings.Replace(s.String(), "x", "×", 1)
}
