package main

import (
	"fmt"
	"hash/fnv"
	"math/rand"

	"reword/backend/diffusion"
	"reword/backend/graph"
	"reword/backend/graph/onnxgraph"
	"reword/backend/graph/onnxpb"
	"reword/backend/ort"
)

// Controls the benchmark times the instrumented UNet with.
const (
	// neutralControls (W = 0, c = 1, s = 0) leave the output as the
	// original's: plain generation and the steps after an edit's
	// cross_replace fraction.
	neutralControls = "neutral"
	// editControls change every target (random W and c, s = 1 on the
	// model's default self-replace layers): the first steps of an edit,
	// where both edits run.
	editControls = "edit"
	// normControls are editControls with every target's GroupNorms taking
	// the source's means (g = 1): the steps inside an edit's norm window.
	normControls = "norm"
)

// Maps outputs the benchmark asks the instrumented UNet for.
const (
	// mapsNone asks for none: plain generation, and edits without local
	// blend or heat maps.
	mapsNone = "none"
	// mapsHeat asks for the output the editor's heat maps read: the finest
	// with at most diffusion.MaxHeatMapPositions positions.
	mapsHeat = "heat"
	// mapsAll asks for every resolution.
	mapsAll = "all"
)

func checkMapsChoice(s string) error {
	switch s {
	case mapsNone, mapsHeat, mapsAll:
		return nil
	}
	return usageError("-maps: unknown choice %q (use %s, %s or %s)", s, mapsNone, mapsHeat, mapsAll)
}

// benchInput is one input of a UNet as its graph declares it.
type benchInput struct {
	name string
	elem onnxgraph.DataType
	dims []onnxgraph.Dim
}

// graphInputs lists the inputs g declares, reading no weights: a UNet with
// 10 GB of weights need not be loaded to learn what to feed it.
func graphInputs(g *onnxpb.GraphProto) ([]benchInput, error) {
	var out []benchInput
	for _, v := range g.GetInput() {
		dims, ok := onnxgraph.TensorDims(v)
		if !ok {
			return nil, fmt.Errorf("input %s has no tensor shape", v.GetName())
		}
		out = append(out, benchInput{name: v.GetName(), elem: onnxgraph.TensorElemType(v), dims: dims})
	}
	return out, nil
}

// benchFeeds makes the inputs of both models: the UNet's own inputs drawn
// once from a fixed seed, so both models see the same values, and the
// controls of the instrumented one.
type benchFeeds struct {
	desc    *graph.Description
	targets int
	maps    string // mapsNone, mapsHeat or mapsAll
	tokens  int64
	data    map[string][]float32 // the UNet's own float inputs, by name
}

func newBenchFeeds(desc *graph.Description, targets int, maps string) *benchFeeds {
	tokens := int64(desc.Tokens)
	if tokens == 0 {
		tokens = 77 // CLIP's sequence length, what the engine feeds a dynamic one
	}
	return &benchFeeds{desc: desc, targets: targets, maps: maps, tokens: tokens, data: map[string][]float32{}}
}

// mapsWanted is the graph.MapsWantedInput value of f.maps.
func (f *benchFeeds) mapsWanted() []float32 {
	w := make([]float32, len(f.desc.Maps))
	switch f.maps {
	case mapsAll:
		for i := range w {
			w[i] = 1
		}
	case mapsHeat:
		if len(w) == 0 {
			break
		}
		// Maps are listed finest first; with every grid over the cap the
		// engine takes the coarsest.
		heat := len(w) - 1
		for i := len(w) - 1; i >= 0; i-- {
			if f.desc.Maps[i].Resolution.Positions() <= diffusion.MaxHeatMapPositions {
				heat = i
			}
		}
		w[heat] = 1
	}
	return w
}

// shape sizes input in at batch B: a dynamic first dimension is the batch,
// the sample's dynamic height and width are the reference latent's, the text
// states' dynamic length is the token count. Any other dynamic dimension is
// one the benchmark cannot know.
func (f *benchFeeds) shape(in benchInput) ([]int64, error) {
	shape := make([]int64, len(in.dims))
	for i, d := range in.dims {
		switch {
		case d.Size > 0:
			shape[i] = d.Size
		case i == 0:
			shape[i] = int64(graph.Batch(f.targets))
		case in.name == graph.SampleInput && (i == 2 || i == 3) && len(in.dims) == 4:
			shape[i] = int64([]int{f.desc.Latent.Height, f.desc.Latent.Width}[i-2])
		case in.name == graph.HiddenStatesInput && i == 1:
			shape[i] = f.tokens
		default:
			return nil, fmt.Errorf("input %s: dimension %d (%q) is dynamic and not one the benchmark can size (batch, latent height and width, tokens)", in.name, i, d.Param)
		}
	}
	return shape, nil
}

// forSession returns the feeds of a model with the given inputs; controls
// (neutralControls, editControls or normControls) is what the instrumented model's
// control inputs get. The caller destroys the values.
func (f *benchFeeds) forSession(inputs []benchInput, controls string) (map[string]ort.Value, error) {
	feeds := map[string]ort.Value{}
	ok := false
	defer func() {
		if !ok {
			destroyValues(feeds)
		}
	}()
	ctl, layers := f.controls(controls)
	ws, cs, perTarget := ctl.Shapes()
	for _, in := range inputs {
		var v ort.Value
		var err error
		switch in.name {
		case graph.CrossWeightsInput:
			v, err = ort.NewTensor(ws, ctl.CrossW)
		case graph.CrossKeepInput:
			v, err = ort.NewTensor(cs, ctl.CrossC)
		case graph.SelfWeightInput:
			v, err = ort.NewTensor(perTarget, ctl.SelfW)
		case graph.NormWeightInput:
			v, err = ort.NewTensor(perTarget, ctl.NormW)
		case graph.SelfLayersInput:
			v, err = ort.NewTensor([]int64{int64(len(layers))}, layers)
		case graph.MapsWantedInput:
			wanted := f.mapsWanted()
			v, err = ort.NewTensor([]int64{int64(len(wanted))}, wanted)
		default:
			v, err = f.unetInput(in)
		}
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", in.name, err)
		}
		feeds[in.name] = v
	}
	ok = true
	return feeds, nil
}

// controls returns the control values and the self-replace layer weights of
// the named controls.
func (f *benchFeeds) controls(kind string) (graph.Controls, []float32) {
	ctl := graph.NoOpControls(f.targets, int(f.tokens))
	layers := f.desc.SelfLayerWeights(f.desc.SelfReplaceMaxQueries)
	if kind != editControls && kind != normControls {
		return ctl, layers
	}
	r := rand.New(rand.NewSource(2))
	for i := range ctl.CrossW {
		ctl.CrossW[i] = r.Float32() * 2 / float32(f.tokens)
	}
	for i := range ctl.CrossC {
		ctl.CrossC[i] = 2 * r.Float32()
	}
	for i := range ctl.SelfW {
		ctl.SelfW[i] = 1
		if kind == normControls {
			ctl.NormW[i] = 1
		}
	}
	return ctl, layers
}

// unetInput makes one of the UNet's own inputs: the timestep 501 (mid
// schedule), every other float input standard normal values (for SDXL's
// text_embeds and time_ids as for the latents: the cost does not depend on
// them).
func (f *benchFeeds) unetInput(in benchInput) (ort.Value, error) {
	shape, err := f.shape(in)
	if err != nil {
		return nil, err
	}
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	switch {
	case in.name == graph.TimestepInput && in.elem == onnxgraph.Int64:
		return ort.NewTensor(shape, repeatValue(int64(501), n))
	case in.name == graph.TimestepInput && in.elem == onnxgraph.Float:
		return ort.NewTensor(shape, repeatValue(float32(501), n))
	case in.elem == onnxgraph.Float:
		v, ok := f.data[in.name]
		if !ok || int64(len(v)) != n {
			h := fnv.New64a()
			h.Write([]byte(in.name))
			r := rand.New(rand.NewSource(int64(h.Sum64() >> 1))) // by name: the same values in every process
			v = make([]float32, n)
			for i := range v {
				v[i] = float32(r.NormFloat64())
			}
			f.data[in.name] = v
		}
		return ort.NewTensor(shape, v)
	}
	return nil, fmt.Errorf("the benchmark feeds float32 inputs and an int64 or float32 timestep; this one is %s (a float16 export: measure its float32 export)", in.elem)
}

func repeatValue[T any](v T, n int64) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func destroyValues(feeds map[string]ort.Value) {
	for _, v := range feeds {
		v.Destroy()
	}
}
