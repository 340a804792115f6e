package graph_test

import (
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"reword/backend/graph"
	"reword/backend/graph/internal/attnblock"
	"reword/backend/graph/modelfile"
	"reword/backend/ort"
)

// storage says how a test model keeps its weights.
type storage int

const (
	embedded storage = iota // in model.onnx, decoded whole
	external                // in unet/weights.pb beside model.onnx
	streamed                // in model.onnx, but left on disk by modelfile and copied through
)

// fixture is a Go-built UNet, its instrumented copy and a session on each.
type fixture struct {
	net        *attnblock.Network
	desc       *graph.Description
	orig, inst *ort.Session
	instPath   string
}

func newFixture(t *testing.T, cfg attnblock.Config, opts graph.Options, store storage) *fixture {
	t.Helper()
	if cfg.DynamicSpatial && opts.Latent == (graph.Size{}) {
		opts.Latent = graph.Size{Height: cfg.Height, Width: cfg.Width} // the size a run feeds
	}
	net, err := attnblock.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	unet := filepath.Join(dir, graph.UNetDir)
	if err := os.Mkdir(unet, 0o755); err != nil {
		t.Fatal(err)
	}
	m := net.Model()
	if store == external {
		if err := attnblock.Externalize(m, unet, "weights.pb", 256); err != nil {
			t.Fatal(err)
		}
	}
	src := filepath.Join(unet, graph.OriginalFile)
	if err := attnblock.Save(m, src); err != nil {
		t.Fatal(err)
	}
	f := &fixture{net: net}
	if store == streamed {
		f.desc, f.instPath = instrumentStreamed(t, src, opts)
	} else {
		f.desc, f.instPath, err = graph.InstrumentDir(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
	}
	if f.orig, err = openFloat32IO(src); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.orig.Close() })
	if f.inst, err = ort.NewSession(f.instPath, ort.Options{Threads: 1}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.inst.Close() })
	return f
}

// openFloat32IO opens a model file with float32 inputs and outputs: an
// fp16 export's through graph.Float32IO, as the engine opens its models.
func openFloat32IO(path string) (*ort.Session, error) {
	b, err := graph.RewriteFile(path, "test model", graph.Float32IORewrite)
	if err != nil {
		return nil, err
	}
	if b == nil {
		return ort.NewSession(path, ort.Options{Threads: 1})
	}
	return ort.NewSessionFromBytes(path, b, ort.Options{Threads: 1})
}

// instrumentStreamed instruments with a tiny inline limit, so that every
// weight is copied from file to file without being decoded.
func instrumentStreamed(t *testing.T, src string, opts graph.Options) (*graph.Description, string) {
	t.Helper()
	m, err := modelfile.ReadWithOptions(src, modelfile.Options{InlineLimit: 1024})
	if err != nil {
		t.Fatal(err)
	}
	onDisk := 0
	for _, init := range m.Proto.GetGraph().GetInitializer() {
		if m.PayloadOnDisk(init) {
			onDisk++
		}
	}
	if onDisk == 0 {
		t.Fatal("no initializer payload was left on disk")
	}
	desc, err := graph.Instrument(m.Proto, opts)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(filepath.Dir(src), graph.InstrumentedFile)
	if err := m.Write(dst); err != nil {
		t.Fatal(err)
	}
	return desc, dst
}

// randomInputs draws a batch of inputs for the network.
func randomInputs(cfg attnblock.Config, batch int, seed int64) attnblock.Inputs {
	r := rand.New(rand.NewSource(seed))
	in := attnblock.Inputs{
		Batch:    batch,
		Sample:   normal(r, batch*cfg.Channels*cfg.Height*cfg.Width),
		Timestep: make([]float64, batch),
		Context:  normal(r, batch*cfg.Tokens*cfg.CtxDim),
	}
	for i := range in.Timestep {
		in.Timestep[i] = float64(1 + r.Intn(999))
	}
	return in
}

func normal(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

// randomControls draws different W, c and s for every target.
func randomControls(targets, tokens int, seed int64) graph.Controls {
	r := rand.New(rand.NewSource(seed))
	c := graph.NoOpControls(targets, tokens)
	for i := range c.CrossW {
		c.CrossW[i] = r.Float32() * 2 / float32(tokens)
	}
	for i := range c.CrossC {
		c.CrossC[i] = 2 * r.Float32()
	}
	for i := range c.SelfW {
		c.SelfW[i] = r.Float32()
	}
	return c
}

// identityControls set W = I, c = 0: every target's cross maps become the
// source's.
func identityControls(targets, tokens int) graph.Controls {
	c := graph.NoOpControls(targets, tokens)
	for e := 0; e < targets; e++ {
		for i := 0; i < tokens; i++ {
			c.CrossW[(e*tokens+i)*tokens+i] = 1
			c.CrossC[e*tokens+i] = 0
		}
	}
	return c
}

// unetFeeds makes the UNet's own input tensors; the caller destroys them.
func unetFeeds(t *testing.T, desc *graph.Description, sampleShape, ctxShape []int64, in attnblock.Inputs) map[string]ort.Value {
	t.Helper()
	feeds := map[string]ort.Value{}
	add := func(name string, v ort.Value, err error) {
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		feeds[name] = v
	}
	s, err := ort.NewTensor(sampleShape, in.Sample)
	add(graph.SampleInput, s, err)
	c, err := ort.NewTensor(ctxShape, in.Context)
	add(graph.HiddenStatesInput, c, err)
	batch := []int64{int64(len(in.Timestep))}
	switch desc.TimestepType {
	case "int64":
		ts := make([]int64, len(in.Timestep))
		for i, x := range in.Timestep {
			ts[i] = int64(x)
		}
		v, err := ort.NewTensor(batch, ts)
		add(graph.TimestepInput, v, err)
	case "float32":
		ts := make([]float32, len(in.Timestep))
		for i, x := range in.Timestep {
			ts[i] = float32(x)
		}
		v, err := ort.NewTensor(batch, ts)
		add(graph.TimestepInput, v, err)
	default:
		t.Fatalf("timestep type %s", desc.TimestepType)
	}
	return feeds
}

// addControls feeds ctl, the description's default self-replace layers
// (setSelfLayers changes them) and asks for every maps output
// (setMapsWanted changes that).
func addControls(t *testing.T, feeds map[string]ort.Value, desc *graph.Description, ctl graph.Controls) {
	t.Helper()
	setSelfLayers(t, feeds, desc.SelfLayerWeights(desc.SelfReplaceMaxQueries))
	all := make([]float32, len(desc.Maps))
	for i := range all {
		all[i] = 1
	}
	setMapsWanted(t, feeds, all)
	if err := ctl.Validate(); err != nil {
		t.Fatal(err)
	}
	w, c, e := ctl.Shapes()
	for name, v := range map[string]struct {
		shape []int64
		data  []float32
	}{graph.CrossWeightsInput: {w, ctl.CrossW}, graph.CrossKeepInput: {c, ctl.CrossC}, graph.SelfWeightInput: {e, ctl.SelfW}, graph.NormWeightInput: {e, ctl.NormW}} {
		tensor, err := ort.NewTensor(v.shape, v.data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		feeds[name] = tensor
	}
}

// setSelfLayers feeds w as the per-layer self-replace weights.
func setSelfLayers(t *testing.T, feeds map[string]ort.Value, w []float32) {
	t.Helper()
	setVector(t, feeds, graph.SelfLayersInput, w)
}

// setMapsWanted feeds w as the maps outputs asked for.
func setMapsWanted(t *testing.T, feeds map[string]ort.Value, w []float32) {
	t.Helper()
	setVector(t, feeds, graph.MapsWantedInput, w)
}

// setVector feeds the float32 vector w as input name, replacing its value.
func setVector(t *testing.T, feeds map[string]ort.Value, name string, w []float32) {
	t.Helper()
	tensor, err := ort.NewTensor([]int64{int64(len(w))}, w)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if old, ok := feeds[name]; ok {
		old.Destroy()
	}
	feeds[name] = tensor
}

func destroy(feeds map[string]ort.Value) {
	for _, v := range feeds {
		v.Destroy()
	}
}

func (f *fixture) shapes(batch int) (sample, ctx []int64) {
	c := f.net.Cfg
	return []int64{int64(batch), int64(c.Channels), int64(c.Height), int64(c.Width)},
		[]int64{int64(batch), int64(c.Tokens), int64(c.CtxDim)}
}

func (f *fixture) runOriginal(t *testing.T, in attnblock.Inputs) []float32 {
	t.Helper()
	ss, cs := f.shapes(in.Batch)
	feeds := unetFeeds(t, f.desc, ss, cs, in)
	defer destroy(feeds)
	outs, err := f.orig.Run(feeds)
	if err != nil {
		t.Fatal(err)
	}
	defer outs.Destroy()
	out, _, err := outs.Float32("out_sample")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// runInstrumented returns out_sample and every maps output by name, with
// the description's default self-replace layers.
func (f *fixture) runInstrumented(t *testing.T, in attnblock.Inputs, ctl graph.Controls) ([]float32, map[string][]float32) {
	t.Helper()
	return f.runInstrumentedLayers(t, in, ctl, f.desc.SelfLayerWeights(f.desc.SelfReplaceMaxQueries))
}

// runInstrumentedLayers is runInstrumented with the per-layer self-replace
// weights w.
func (f *fixture) runInstrumentedLayers(t *testing.T, in attnblock.Inputs, ctl graph.Controls, w []float32) ([]float32, map[string][]float32) {
	t.Helper()
	ss, cs := f.shapes(in.Batch)
	feeds := unetFeeds(t, f.desc, ss, cs, in)
	defer destroy(feeds)
	addControls(t, feeds, f.desc, ctl)
	setSelfLayers(t, feeds, w)
	outs, err := f.inst.Run(feeds)
	if err != nil {
		t.Fatal(err)
	}
	defer outs.Destroy()
	out, _, err := outs.Float32("out_sample")
	if err != nil {
		t.Fatal(err)
	}
	maps := map[string][]float32{}
	for _, m := range f.desc.Maps {
		data, shape, err := outs.Float32(m.Name)
		if err != nil {
			t.Fatal(err)
		}
		want := []int64{int64(ctl.Targets + 1), int64(m.Resolution.Positions()), int64(ctl.Tokens)}
		if len(shape) != 3 || shape[0] != want[0] || shape[1] != want[1] || shape[2] != want[2] {
			t.Fatalf("%s has shape %v, want %v", m.Name, shape, want)
		}
		maps[m.Name] = data
	}
	return out, maps
}

// referenceMaps averages the reference's per-layer maps the way a maps
// output does. Layers are matched by graph order, so exports without scoped
// names work too.
func (f *fixture) referenceMaps(res attnblock.Result) map[string][]float64 {
	refName := map[string]string{}
	for i, l := range f.desc.Layers {
		refName[l.Name] = f.net.LayerNames()[i]
	}
	out := map[string][]float64{}
	for _, m := range f.desc.Maps {
		var sum []float64
		for _, name := range m.Layers {
			layer := res.Maps[refName[name]]
			if sum == nil {
				sum = make([]float64, len(layer))
			}
			for i, v := range layer {
				sum[i] += v / float64(len(m.Layers))
			}
		}
		out[m.Name] = sum
	}
	return out
}

// maxDiff returns max |got − want| and max |want|.
func maxDiff(got []float32, want []float64) (diff, scale float64) {
	for i := range got {
		diff = math.Max(diff, math.Abs(float64(got[i])-want[i]))
		scale = math.Max(scale, math.Abs(want[i]))
	}
	return diff, scale
}

func bitwiseEqual(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: value %d is %v, want %v bit for bit", what, i, got[i], want[i])
		}
	}
}

// runOne runs s on one float32 input of the given shape and returns a copy
// of one float32 output.
func runOne(t *testing.T, s *ort.Session, input string, shape []int64, in []float32, output string) []float32 {
	t.Helper()
	x, err := ort.NewTensor(shape, in)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Destroy()
	outs, err := s.Run(map[string]ort.Value{input: x})
	if err != nil {
		t.Fatal(err)
	}
	defer outs.Destroy()
	v, _, err := outs.Float32(output)
	if err != nil {
		t.Fatal(err)
	}
	return slices.Clone(v)
}
