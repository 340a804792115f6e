package diffusion

import (
	"context"
	"fmt"
	"strings"

	"reword/backend/graph"
	"reword/backend/ort"
	"reword/shared/clip"
)

// The UNet binding: the one place that knows the instrumented UNet's
// inputs, outputs and timestep type. A new model family whose UNet takes
// other inputs changes this file and its manifest, nothing else.

// unetFacts is what the engine reads from the instrumented UNet when it
// loads: how it takes timesteps, and its attention-map outputs.
type unetFacts struct {
	timestepType ort.DType // float32 or int64
	timestepOne  bool      // one timestep for the whole batch, shape [1]
	// timestepScalar: one timestep for the whole batch as a scalar (rank
	// 0), which every step feeds anew (unetCall.run).
	timestepScalar bool
	// maps are the attention-map outputs, finest first; blendOut and
	// heatOut index the ones local blend and heat maps read.
	maps              []mapsOutput
	blendOut, heatOut int
	// desc is the instrumented UNet's description: its self layers and
	// their default limit choose a run's self-replace layers
	// (selflayers.go).
	desc *graph.Description
}

// mapsOutput is one attention-map output of the instrumented UNet.
type mapsOutput struct {
	name   string
	stride int
	w, h   int // grid at the model's latent size
}

// checkUNet verifies the UNet's inputs and outputs against the
// instrumentation contract (backend/graph) and the text encoder's width,
// and reads what varies between exports.
func (e *Engine) checkUNet(desc *graph.Description) error {
	for _, name := range []string{graph.SampleInput, graph.HiddenStatesInput, graph.CrossWeightsInput, graph.CrossKeepInput, graph.SelfWeightInput, graph.NormWeightInput} {
		if i, ok := e.unet.Input(name); !ok || i.DType != ort.Float32 {
			return fmt.Errorf("UNet %s: want a float32 input %q (Instrument casts an fp16 export's float16 inputs to float32; instrument it again if it is older), the model has %v", e.unet.Name(), name, e.unet.InputInfo())
		}
	}
	ts, ok := e.unet.Input(graph.TimestepInput)
	if !ok || ts.DType != ort.Float32 && ts.DType != ort.Int64 {
		return fmt.Errorf("UNet: want a float32 or int64 input %q, the model has %v", graph.TimestepInput, e.unet.InputInfo())
	}
	e.timestepType = ts.DType
	// Some exports declare a single timestep that broadcasts over the
	// batch (the diffusers ONNX pipeline feeds one); others one per row.
	e.timestepOne = len(ts.Shape) == 1 && ts.Shape[0] == 1
	e.timestepScalar = len(ts.Shape) == 0
	if hs, _ := e.unet.Input(graph.HiddenStatesInput); len(hs.Shape) == 3 && hs.Shape[2] > 0 && int(hs.Shape[2]) != e.hidden {
		return fmt.Errorf("UNet takes text embeddings of width %d; the text encoders give %d", hs.Shape[2], e.hidden)
	}
	if err := e.checkTextTime(); err != nil {
		return err
	}
	if _, ok := e.unet.Output(e.manifest.UNet.Output); !ok {
		return fmt.Errorf("UNet: no output %q (the model has %v)", e.manifest.UNet.Output, e.unet.OutputInfo())
	}
	if err := e.checkMaps(desc); err != nil {
		return fmt.Errorf("UNet %s: %w: instrument it again with `reword instrument`", e.unet.Name(), err)
	}
	if err := e.checkSelfLayers(desc); err != nil {
		return fmt.Errorf("UNet %s: %w: instrument it again with `reword instrument`", e.unet.Name(), err)
	}
	e.desc = desc
	return nil
}

// The inputs of SDXL's UNet besides SD's (addition_embed_type
// "text_time"), as diffusers and Optimum name them.
const (
	// TextEmbedsInput takes the second text encoder's pooled projection,
	// [batch, width].
	TextEmbedsInput = "text_embeds"
	// TimeIDsInput takes SDXL's size conditioning, [batch, 6]: the
	// original height and width, the crop's top and left, the target
	// height and width (timeIDs).
	TimeIDsInput = "time_ids"
)

// timeIDCount is the length of one row's time_ids.
const timeIDCount = 6

// checkTextTime verifies that the UNet takes text_embeds and time_ids
// exactly when the manifest says it does (unet.text_time), with the pooled
// embedding's width: a manifest and a UNet that disagree would otherwise
// fail at the first step with ONNX Runtime's words.
func (e *Engine) checkTextTime() error {
	te, hasTE := e.unet.Input(TextEmbedsInput)
	ti, hasTI := e.unet.Input(TimeIDsInput)
	if !e.manifest.UNet.TextTime {
		if hasTE || hasTI {
			return fmt.Errorf("UNet takes %s and %s (an SDXL UNet) but the manifest has one text encoder and no unet.text_time: "+
				"derive it from the SDXL export folder (no model.json) or state text_encoder_2 and unet.text_time", TextEmbedsInput, TimeIDsInput)
		}
		return nil
	}
	if !hasTE || te.DType != ort.Float32 || len(te.Shape) != 2 || !hasTI || ti.DType != ort.Float32 || len(ti.Shape) != 2 {
		return fmt.Errorf("UNet: the manifest says it is SDXL's (unet.text_time) but it lacks the float32 inputs %s [batch, width] and %s [batch, %d]; it has %v",
			TextEmbedsInput, TimeIDsInput, timeIDCount, e.unet.InputInfo())
	}
	if w := te.Shape[1]; w > 0 && int(w) != e.pooled {
		return fmt.Errorf("UNet takes %s of width %d; the second text encoder's %s gives %d", TextEmbedsInput, w, e.manifest.TextEncoder2.Pooled, e.pooled)
	}
	if n := ti.Shape[1]; n > 0 && n != timeIDCount {
		return fmt.Errorf("UNet takes %s of %d values per row; SDXL base's are %d (original size, crop corner, target size; a refiner's 5 are not supported)", TimeIDsInput, n, timeIDCount)
	}
	return nil
}

// timeIDs are SDXL's size conditioning of one row, as diffusers'
// StableDiffusionXLPipeline sets them by default: the original size and the
// target size are the image's (height, width), the crop corner (0, 0).
func (e *Engine) timeIDs() [timeIDCount]float32 {
	h, w := float32(e.manifest.Image.Height), float32(e.manifest.Image.Width)
	return [timeIDCount]float32{h, w, 0, 0, h, w}
}

// checkMaps reads the maps outputs from the description and checks that
// the UNet has exactly those outputs besides its own, with the shapes the
// description implies: the engine sizes its buffers from the description,
// so a graph that disagrees with it must not run.
func (e *Engine) checkMaps(desc *graph.Description) error {
	m := e.manifest
	want := map[string]bool{m.UNet.Output: true}
	e.maps, e.blendOut, e.heatOut = nil, -1, -1
	for i, d := range desc.Maps {
		if d.Stride <= 0 || !strings.HasPrefix(d.Name, graph.MapsOutputPrefix) {
			return fmt.Errorf("its description lists a maps output %q of stride %d", d.Name, d.Stride)
		}
		if i > 0 && d.Stride <= desc.Maps[i-1].Stride {
			return fmt.Errorf("its description lists the maps outputs out of order (%s after %s)", d.Name, desc.Maps[i-1].Name)
		}
		// The graph pools with ceiling division (graph.MapsOutput).
		out := mapsOutput{name: d.Name, stride: d.Stride,
			w: (m.Latent.Width + d.Stride - 1) / d.Stride, h: (m.Latent.Height + d.Stride - 1) / d.Stride}
		info, ok := e.unet.Output(d.Name)
		if !ok || info.DType != ort.Float32 || len(info.Shape) != 3 {
			return fmt.Errorf("its description lists a maps output %q that the graph lacks or that is not float32 [1+E, N, T] (outputs: %v)", d.Name, e.unet.OutputInfo())
		}
		if n := info.Shape[1]; n > 0 && int(n) != out.w*out.h {
			return fmt.Errorf("maps output %s has %d positions; a %d×%d latent at stride %d gives %d×%d", d.Name, n, m.Latent.Height, m.Latent.Width, d.Stride, out.h, out.w)
		}
		want[d.Name] = true
		if d.Name == desc.BlendMaps {
			e.blendOut = len(e.maps)
		}
		if out.w*out.h <= MaxHeatMapPositions && e.heatOut < 0 {
			e.heatOut = len(e.maps)
		}
		e.maps = append(e.maps, out)
	}
	if len(e.maps) == 0 || e.blendOut < 0 {
		return fmt.Errorf("no usable %s* attention-map output (local blend reads %q)", graph.MapsOutputPrefix, desc.BlendMaps)
	}
	if e.heatOut < 0 {
		e.heatOut = len(e.maps) - 1 // every grid is over the cap: the coarsest
	}
	for _, o := range e.unet.OutputInfo() {
		if !want[o.Name] {
			return fmt.Errorf("output %q is neither %q nor a maps output its description lists", o.Name, m.UNet.Output)
		}
	}
	if len(e.unet.OutputInfo()) != len(want) {
		return fmt.Errorf("has outputs %v; the engine expects %q and the maps outputs %v", e.unet.OutputInfo(), m.UNet.Output, e.mapNames())
	}
	return nil
}

func (e *Engine) mapNames() []string {
	var names []string
	for _, o := range e.maps {
		names = append(names, o.name)
	}
	return names
}

// unetCall is the UNet bound to one run's buffers, allocated once and
// reused by every step: the batch's latents (sample), the timestep, the
// text conditioning (text; for SDXL also the pooled text_embeds and the
// time_ids), the attention controls (ctl) as inputs; the
// noise prediction (out) and every attention-map output (maps, [rows,
// w·h, 77]: the conditional rows only) as outputs.
//
// The batch has the unconditional rows first, then the conditional ones
// (rows of them); the instrumented graph finds the conditional rows from
// the end of the batch (backend/graph), so an inversion's batch of one is
// the source alone.
type unetCall struct {
	e           *Engine
	batch, rows int
	sample, out []float32
	text        condition
	timeIDs     []float32 // [batch, 6] when the UNet takes time_ids
	ctl         graph.Controls
	maps        []*mapsRun
	// mapsWanted feeds graph.MapsWantedInput: 1 for the maps outputs
	// something reads (readMaps), whose tensors mapTensors are then bound;
	// the others come back empty and are left out.
	mapsWanted []float32
	mapTensors []ort.Value
	tsF32      []float32
	tsI64      []int64

	inputs, outputs map[string]ort.Value
	tensors         tensorSet
}

// bindUNet allocates a UNet call of batch rows, rows of them conditional,
// with targets edited rows among those (the controls' E) and the batch's
// text conditioning text (a row each) and the run's per-layer
// self-replace weights selfLayers (nil: none). Close frees its tensors.
func (e *Engine) bindUNet(batch, rows, targets int, text condition, selfLayers []float32) (*unetCall, error) {
	return e.bindUNetWith(batch, rows, text, selfLayers, graph.NoOpControls(targets, clip.ContextLength), e.mapsOutputs(rows))
}

// sibling binds another call of the same rows with another batch layout
// and text conditioning, which shares u's controls and maps: what the
// controls of a step set, both calls read, and the maps of either call
// add to the same sums. Reading a maps output (readMaps) is per call.
func (u *unetCall) sibling(batch int, text condition, selfLayers []float32) (*unetCall, error) {
	return u.e.bindUNetWith(batch, u.rows, text, selfLayers, u.ctl, u.maps)
}

func (e *Engine) bindUNetWith(batch, rows int, text condition, selfLayers []float32, ctl graph.Controls, maps []*mapsRun) (*unetCall, error) {
	m := e.manifest
	C, H, W := m.Latent.Channels, m.Latent.Height, m.Latent.Width
	u := &unetCall{
		e: e, batch: batch, rows: rows, text: text,
		sample: make([]float32, batch*C*H*W), out: make([]float32, batch*C*H*W),
		ctl: ctl, maps: maps,
	}
	tsLen := batch
	if e.timestepOne || e.timestepScalar {
		tsLen = 1
	}
	u.tsF32, u.tsI64 = make([]float32, tsLen), make([]int64, tsLen)
	var timestep ort.Value // a scalar's is made by every run
	switch {
	case e.timestepScalar:
	case e.timestepType == ort.Int64:
		timestep = u.tensors.add(ort.NewTensor([]int64{int64(tsLen)}, u.tsI64))
	default:
		timestep = u.tensors.add(ort.NewTensor([]int64{int64(tsLen)}, u.tsF32))
	}
	latent := []int64{int64(batch), int64(C), int64(H), int64(W)}
	wShape, cShape, perTarget := u.ctl.Shapes()
	u.inputs = map[string]ort.Value{
		graph.SampleInput:       u.tensors.add(ort.NewTensor(latent, u.sample)),
		graph.TimestepInput:     timestep,
		graph.HiddenStatesInput: u.tensors.add(ort.NewTensor([]int64{int64(batch), clip.ContextLength, int64(e.hidden)}, text.hidden)),
		graph.CrossWeightsInput: u.tensors.add(ort.NewTensor(wShape, u.ctl.CrossW)),
		graph.CrossKeepInput:    u.tensors.add(ort.NewTensor(cShape, u.ctl.CrossC)),
		graph.SelfWeightInput:   u.tensors.add(ort.NewTensor(perTarget, u.ctl.SelfW)),
		graph.NormWeightInput:   u.tensors.add(ort.NewTensor(perTarget, u.ctl.NormW)),
		graph.SelfLayersInput:   u.tensors.add(e.selfLayersTensor(selfLayers)),
	}
	u.mapsWanted = make([]float32, len(u.maps))
	u.inputs[graph.MapsWantedInput] = u.tensors.add(ort.NewTensor([]int64{int64(len(u.maps))}, u.mapsWanted))
	if m.UNet.TextTime {
		u.bindTextTime()
	}
	u.outputs = map[string]ort.Value{m.UNet.Output: u.tensors.add(ort.NewTensor(latent, u.out))}
	for _, o := range u.maps {
		u.mapTensors = append(u.mapTensors, u.tensors.add(ort.NewTensor([]int64{int64(rows), int64(o.w * o.h), clip.ContextLength}, o.values)))
	}
	if u.tensors.err != nil {
		u.close()
		return nil, u.tensors.err
	}
	return u, nil
}

// readMaps asks every later run for maps output i and sums it over the
// runs.
func (u *unetCall) readMaps(i int) {
	u.maps[i].sum()
	u.mapsWanted[i] = 1
	u.outputs[u.maps[i].name] = u.mapTensors[i]
}

// bindTextTime adds SDXL's inputs: every row's pooled embedding as
// text_embeds and the model's time_ids, the same for every row (diffusers
// gives the unconditional rows the same ones unless told otherwise).
func (u *unetCall) bindTextTime() {
	e, batch := u.e, u.batch
	ids := e.timeIDs()
	u.timeIDs = make([]float32, 0, batch*timeIDCount)
	for range batch {
		u.timeIDs = append(u.timeIDs, ids[:]...)
	}
	u.inputs[TextEmbedsInput] = u.tensors.add(ort.NewTensor([]int64{int64(batch), int64(e.pooled)}, u.text.pooled))
	u.inputs[TimeIDsInput] = u.tensors.add(ort.NewTensor([]int64{int64(batch), timeIDCount}, u.timeIDs))
}

// run evaluates the UNet at timestep t on the current inputs, writing out
// and the maps, then adds the maps that something reads to their sums.
func (u *unetCall) run(ctx context.Context, t int) error {
	for b := range u.tsF32 {
		u.tsF32[b], u.tsI64[b] = float32(t), int64(t)
	}
	if u.e.timestepScalar {
		ts, err := u.scalarTimestep(t)
		if err != nil {
			return err
		}
		defer ts.Destroy()
		u.inputs[graph.TimestepInput] = ts
		defer delete(u.inputs, graph.TimestepInput)
	}
	if err := u.e.unet.RunInto(ctx, u.inputs, u.outputs); err != nil {
		return err
	}
	for _, o := range u.maps {
		o.accumulate()
	}
	return nil
}

// scalarTimestep is timestep t for a UNet that takes a scalar one: a new
// rank-0 tensor per step, since onnxruntime_go's scalars cannot change
// value (ort.NewScalar).
func (u *unetCall) scalarTimestep(t int) (ort.Value, error) {
	if u.e.timestepType == ort.Int64 {
		return ort.NewScalar(int64(t))
	}
	return ort.NewScalar(float32(t))
}

func (u *unetCall) close() { u.tensors.destroy() }

// tensorSet collects the tensors of a run so that one call frees them all.
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
	s.values = nil
}
