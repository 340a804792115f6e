package graph

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Kind says what an attention layer attends to.
type Kind string

const (
	// Cross attention: keys and values come from the text
	// (encoder_hidden_states).
	Cross Kind = "cross"
	// Self attention: keys and values come from the image features.
	Self Kind = "self"
)

// Size is a height and width in latent positions.
type Size struct {
	Height int `json:"height"`
	Width  int `json:"width"`
}

func (s Size) String() string { return fmt.Sprintf("%d×%d", s.Height, s.Width) }

// Positions is Height·Width.
func (s Size) Positions() int { return s.Height * s.Width }

// Layer describes one attention layer of the UNet.
type Layer struct {
	// Name is the attention module's scope in the export
	// (/down_blocks.1/attentions.0/transformer_blocks.0/attn2), or the
	// Softmax node's own name for exports without scoped names.
	Name string `json:"name"`
	// Softmax is the name of the layer's Softmax node.
	Softmax string `json:"softmax"`
	Kind    Kind   `json:"kind"`
	// Stride is how many latent positions per side one query position
	// covers: 1 at full latent resolution, 2 after one downsampling, …
	Stride int `json:"stride"`
	// Resolution is the query grid at the reference latent size, and
	// Queries its number of positions.
	Resolution Size `json:"resolution"`
	Queries    int  `json:"queries"`
	// Heads is the number of attention heads, 0 when the graph does not
	// state it as a constant.
	Heads int `json:"heads"`
	// DType is the element type the probabilities are computed in.
	DType string `json:"dtype"`
	// Edited says whether the control is spliced in: always for cross
	// attention; for self attention, whether a run can switch the
	// self-replace edit on (every self layer unless instrumented with a
	// negative limit; which run it is SelfLayersInput's choice).
	Edited bool `json:"edited"`
	// Maps names the maps output this layer's probabilities are averaged
	// into, or is empty.
	Maps string `json:"maps,omitempty"`
}

// MapsOutput describes one attention-map output: the cross-attention layers
// of one resolution.
type MapsOutput struct {
	Name   string `json:"name"`
	Stride int    `json:"stride"`
	// Resolution is the map grid at the reference latent size; at another
	// latent size H×W it is ceil(H/Stride)×ceil(W/Stride).
	Resolution Size `json:"resolution"`
	// Layers are the names of the cross-attention layers averaged.
	Layers []string `json:"layers"`
}

// Description is what Instrument did to a UNet, and what the engine needs to
// drive the result.
type Description struct {
	// Layout is the LayoutVersion of the interface the file was written
	// with; 0 for files written before it was recorded.
	Layout int     `json:"layout"`
	Layers []Layer `json:"layers"`
	// Maps has one output per cross-attention resolution, finest first.
	Maps []MapsOutput `json:"maps"`
	// BlendMaps names the output local blending reads (Options.MapsQueries).
	BlendMaps string `json:"blend_maps"`
	// Latent is the reference latent size that Resolution and Queries refer
	// to: the model's own when its sample input has a fixed size.
	Latent Size `json:"latent"`
	// LatentFixed says whether the model only accepts Latent.
	LatentFixed bool `json:"latent_fixed"`
	// SelfReplaceMaxQueries is the default self-replace limit: a run
	// that does not choose edits the self-attention layers with at most
	// this many query positions (0: none).
	SelfReplaceMaxQueries int `json:"self_replace_max_queries"`
	// NormLayers is how many GroupNorms (float32 InstanceNormalization
	// nodes in the export) NormWeightInput reaches; 0 for a UNet without
	// them (an fp16 export's are float16; one at opset 18 or later writes
	// GroupNormalization instead), on which the input changes nothing.
	NormLayers int `json:"norm_layers"`
	// Tokens is the text sequence length T the model declares, 0 when it
	// leaves it dynamic (then the text encoder's length, 77 for CLIP).
	Tokens int   `json:"tokens"`
	Opset  int64 `json:"opset"`
	// Element types of the UNet's own inputs, as the engine must feed them.
	SampleType       string `json:"sample_type"`
	TimestepType     string `json:"timestep_type"`
	HiddenStatesType string `json:"encoder_hidden_states_type"`
	// Float16IO lists the UNet's own inputs and outputs that the export
	// declared float16 (an fp16 export) and that Instrument made float32,
	// with Casts at the graph boundary (Float32IO).
	Float16IO []string `json:"float16_io,omitempty"`
}

// Count returns how many layers of the kind there are and how many of them
// are edited.
func (d *Description) Count(kind Kind) (total, edited int) {
	for _, l := range d.Layers {
		if l.Kind == kind {
			total++
			if l.Edited {
				edited++
			}
		}
	}
	return total, edited
}

// SelfLayers returns the self-attention layers that can take the
// self-replace edit, in the order of SelfLayersInput's entries.
func (d *Description) SelfLayers() []Layer {
	var out []Layer
	for _, l := range d.Layers {
		if l.Kind == Self && l.Edited {
			out = append(out, l)
		}
	}
	return out
}

// SelfLayerWeights returns the SelfLayersInput value of a run that
// self-replaces the layers with at most maxQueries query positions at the
// reference latent: 1 for those, 0 for the others (maxQueries ≤ 0: none).
func (d *Description) SelfLayerWeights(maxQueries int) []float32 {
	layers := d.SelfLayers()
	w := make([]float32, len(layers))
	for k, l := range layers {
		if l.Queries <= maxQueries {
			w[k] = 1
		}
	}
	return w
}

// WriteTable prints one line per attention layer and a summary.
func (d *Description) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LAYER\tKIND\tRESOLUTION\tQUERIES\tHEADS\tDTYPE\tEDITED\tMAPS")
	for _, l := range d.Layers {
		heads := "?"
		if l.Heads > 0 {
			heads = fmt.Sprint(l.Heads)
		}
		edited := "no"
		switch {
		case l.Edited && l.Kind == Cross:
			edited = "yes (W, c)"
		case l.Edited && l.Queries <= d.SelfReplaceMaxQueries:
			edited = "yes (self-replace)"
		case l.Edited:
			edited = fmt.Sprintf("per run (> %d queries: off by default)", d.SelfReplaceMaxQueries)
		}
		maps := l.Maps
		if maps == "" {
			maps = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", l.Name, l.Kind, l.Resolution, l.Queries, heads, l.DType, edited, maps)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	cross, crossEdited := d.Count(Cross)
	self, selfEdited := d.Count(Self)
	latent := d.Latent.String() + " latent"
	if !d.LatentFixed {
		latent += " (reference size; the model accepts others)"
	}
	_, err := fmt.Fprintf(w, "\n%d cross-attention layers (%d edited), %d self-attention layers (%d with self-replace, chosen per run; by default ≤ %d queries); resolutions at %s; opset %d\n",
		cross, crossEdited, self, selfEdited, d.SelfReplaceMaxQueries, latent, d.Opset)
	if err != nil {
		return err
	}
	for _, m := range d.Maps {
		use := ""
		if m.Name == d.BlendMaps {
			use = " (local blend)"
		}
		if _, err := fmt.Fprintf(w, "output %s [1+E, %d, T]%s: head- and layer-averaged cross-attention at %s of %s\n",
			m.Name, m.Resolution.Positions(), use, m.Resolution, strings.Join(m.Layers, ", ")); err != nil {
			return err
		}
	}
	if _, err := fmt.Fprintf(w, "%d GroupNorms can take the source's means (%s)\n", d.NormLayers, NormWeightInput); err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "inputs: %s %s, %s %s, %s %s; controls %s [E,T,T], %s [E,T], %s [E], %s [E], %s [%d], %s [%d] float32 (T = %s)\n",
		SampleInput, d.SampleType, TimestepInput, d.TimestepType, HiddenStatesInput, d.HiddenStatesType,
		CrossWeightsInput, CrossKeepInput, SelfWeightInput, NormWeightInput, SelfLayersInput, len(d.SelfLayers()), MapsWantedInput, len(d.Maps), tokensText(d.Tokens))
	if err == nil && len(d.Float16IO) > 0 {
		_, err = fmt.Fprintf(w, "float16 export: %s cast from and to float32 at the graph boundary\n", strings.Join(d.Float16IO, ", "))
	}
	return err
}

func tokensText(t int) string {
	if t == 0 {
		return "the text encoder's sequence length"
	}
	return fmt.Sprint(t)
}

// MapsOutput returns the maps output with the given name.
func (d *Description) MapsOutput(name string) (MapsOutput, bool) {
	for _, m := range d.Maps {
		if m.Name == name {
			return m, true
		}
	}
	return MapsOutput{}, false
}

// CheckLayout reports whether the description belongs to a file of this
// build's LayoutVersion with a usable local-blend output; the error says
// what differs, for a message that asks to instrument again.
func (d *Description) CheckLayout() error {
	switch {
	case d.Layout == 0:
		return fmt.Errorf("%w: it was written by an earlier version of Reword (one attention-map output; layout %d has one per cross-attention resolution)", ErrLayout, LayoutVersion)
	case d.Layout == 2:
		return fmt.Errorf("%w: it has layout 2, whose self-replace layers were fixed when it was written; layout %d chooses them per run", ErrLayout, LayoutVersion)
	case d.Layout == 3:
		return fmt.Errorf("%w: it has layout 3, which computes every attention-map output in every run; layout %d computes those a run asks for (%s)", ErrLayout, LayoutVersion, MapsWantedInput)
	case d.Layout == 4:
		return fmt.Errorf("%w: it has layout 4, without the GroupNorm control (%s) of layout %d", ErrLayout, NormWeightInput, LayoutVersion)
	case d.Layout == 5:
		return fmt.Errorf("%w: it has layout 5, whose GroupNorm control (%s) shares the source's variance too; layout %d shares its mean alone", ErrLayout, NormWeightInput, LayoutVersion)
	case d.Layout != LayoutVersion:
		return fmt.Errorf("%w: it has layout %d, this build reads layout %d", ErrLayout, d.Layout, LayoutVersion)
	}
	if _, ok := d.MapsOutput(d.BlendMaps); !ok {
		return fmt.Errorf("%w: its local-blend output %q is not among its maps outputs", ErrLayout, d.BlendMaps)
	}
	return nil
}

func (d *Description) marshal() (string, error) {
	b, err := json.Marshal(d)
	return string(b), err
}

func unmarshalDescription(s string) (*Description, error) {
	d := &Description{}
	if err := json.Unmarshal([]byte(s), d); err != nil {
		return nil, fmt.Errorf("decoding %s metadata: %w", DescriptionKey, err)
	}
	return d, nil
}
