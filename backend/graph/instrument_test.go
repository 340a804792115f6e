package graph_test

import (
	"fmt"
	"math"
	"testing"

	"reword/backend/graph"
	"reword/backend/graph/internal/attnblock"
	"reword/backend/graph/onnxgraph"
)

// variant is one way real exports differ.
type variant struct {
	name   string
	cfg    func(*attnblock.Config)
	store  storage
	fp16   bool
	scoped bool
}

func variants() []variant {
	return []variant{
		{name: "classic/opset14", cfg: func(c *attnblock.Config) {}, scoped: true},
		{name: "sdpa/opset14", cfg: func(c *attnblock.Config) { c.Layout = attnblock.SDPA }, scoped: true},
		{name: "classic/opset17/float-timestep", cfg: func(c *attnblock.Config) { c.Opset = 17; c.TimestepType = onnxgraph.Float }, scoped: true},
		{name: "sdpa/opset18", cfg: func(c *attnblock.Config) { c.Layout = attnblock.SDPA; c.Opset = 18 }, scoped: true},
		{name: "classic/old-names", cfg: func(c *attnblock.Config) { c.OldNames = true }},
		{name: "sdpa/old-names/opset18", cfg: func(c *attnblock.Config) { c.Layout = attnblock.SDPA; c.OldNames = true; c.Opset = 18 }},
		{name: "sdpa/external-data", cfg: func(c *attnblock.Config) { c.Layout = attnblock.SDPA }, store: external, scoped: true},
		{name: "classic/external-data/opset18", cfg: func(c *attnblock.Config) { c.Opset = 18 }, store: external, scoped: true},
		{name: "classic/weights-streamed", cfg: func(c *attnblock.Config) {}, store: streamed, scoped: true},
		{name: "classic/fp16", cfg: func(c *attnblock.Config) { c.FP16 = true }, fp16: true, scoped: true},
		{name: "classic/fp16/upcast-softmax", cfg: func(c *attnblock.Config) { c.FP16 = true; c.UpcastSoftmax = true }, fp16: true, scoped: true},
		{name: "sdpa/fp16/opset17/external-data", cfg: func(c *attnblock.Config) { c.Layout = attnblock.SDPA; c.FP16 = true; c.Opset = 17 },
			store: external, fp16: true, scoped: true},
		// fp16 exports with float16 inputs and outputs (diffusers' --fp16),
		// which Instrument gives float32 ones; the original runs through
		// graph.Float32IO, as the engine opens every model.
		{name: "classic/fp16-io", cfg: func(c *attnblock.Config) { c.FP16 = true; c.FP16IO = true }, fp16: true, scoped: true},
		{name: "sdpa/fp16-io/upcast-softmax/float-timestep", cfg: func(c *attnblock.Config) {
			c.Layout = attnblock.SDPA
			c.FP16, c.FP16IO, c.UpcastSoftmax, c.TimestepType = true, true, true, onnxgraph.Float
		}, fp16: true, scoped: true},
		// A dynamic height and width (Optimum's exports): the graph finds
		// each layer's query count at run time.
		{name: "sdpa/dynamic-latent", cfg: func(c *attnblock.Config) { c.Layout = attnblock.SDPA; c.DynamicSpatial = true }, scoped: true},
		{name: "classic/fp16/dynamic-latent", cfg: func(c *attnblock.Config) { c.FP16 = true; c.DynamicSpatial = true }, fp16: true, scoped: true},
	}
}

const targets = 2

// editAllSelf puts self-replace on every self layer of the 8×8 test network,
// so the self edit is checked at both resolutions.
var editAllSelf = graph.Options{SelfReplaceMaxQueries: 64}

// TestInstrumentedBlocks checks the three properties the engine relies on,
// on Go-built UNets in every export variant, against ONNX Runtime.
func TestInstrumentedBlocks(t *testing.T) {
	for _, v := range variants() {
		t.Run(v.name, func(t *testing.T) {
			cfg := attnblock.DefaultConfig()
			v.cfg(&cfg)
			f := newFixture(t, cfg, editAllSelf, v.store)
			checkDescription(t, f, v)
			batch := graph.Batch(targets)
			in := randomInputs(cfg, batch, 7)
			orig := f.runOriginal(t, in)
			ref, err := f.net.Reference(in, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			d, scale := maxDiff(orig, ref.Out)
			t.Logf("original vs Go reference: max |diff| %.2g (max |out| %.2g)", d, scale)
			outTol := 1e-5 * math.Max(1, scale)
			mapTol := 1e-5
			if v.fp16 {
				// The full-resolution maps include the up block's layer,
				// whose inputs carry the whole network's float16 rounding.
				outTol, mapTol = 3e-2*math.Max(1, scale), 5e-3
			}
			if d > outTol {
				t.Fatalf("the original model does not compute what the reference does (%.3g > %.3g): the test network is wrong", d, outTol)
			}

			// (a) W = 0, c = 1, s = 0 leaves the model as it was.
			noop := graph.NoOpControls(targets, cfg.Tokens)
			out, maps := f.runInstrumented(t, in, noop)
			// Bit for bit in fp16 exports too: the cross edit runs in
			// float32 whatever the Softmax's precision (graph.editCross).
			bitwiseEqual(t, "(a) no-op output", out, orig)
			refNoop, err := f.net.Reference(in, &noop, editAllSelf.SelfReplaceMaxQueries)
			if err != nil {
				t.Fatal(err)
			}
			checkMaps(t, "(a)", maps, f.referenceMaps(refNoop), mapTol)

			// (b) W = I, c = 0: every target's cross maps are the source's.
			ident := identityControls(targets, cfg.Tokens)
			out, maps = f.runInstrumented(t, in, ident)
			for _, m := range f.desc.Maps {
				rows := splitRows(maps[m.Name], targets+1)
				for e := 1; e <= targets; e++ {
					bitwiseEqual(t, fmt.Sprintf("(b) %s target %d vs source", m.Name, e), rows[e], rows[0])
				}
			}
			// Edits touch only the cond target rows: the uncond rows and the
			// cond source row keep the original output.
			keep := (batch - targets) * len(orig) / batch
			bitwiseEqual(t, "(b) unedited rows", out[:keep], orig[:keep])

			// (c) random controls against the plain-Go reference.
			ctl := randomControls(targets, cfg.Tokens, 11)
			out, maps = f.runInstrumented(t, in, ctl)
			ref, err = f.net.Reference(in, &ctl, editAllSelf.SelfReplaceMaxQueries)
			if err != nil {
				t.Fatal(err)
			}
			d, scale = maxDiff(out, ref.Out)
			t.Logf("(c) random controls: output vs reference max |diff| %.2g (max |out| %.2g)", d, scale)
			if d > outTol {
				t.Fatalf("(c) output differs from the reference by %.3g > %.3g", d, outTol)
			}
			checkMaps(t, "(c)", maps, f.referenceMaps(ref), mapTol)
			// The edit must have done something: the target rows moved.
			if d, _ := maxDiff(out[keep:], widen(orig[keep:])); d < 1e-3 {
				t.Fatalf("(c) random controls changed the target rows by only %.3g", d)
			}
		})
	}
}

func checkDescription(t *testing.T, f *fixture, v variant) {
	t.Helper()
	d := f.desc
	if len(d.Layers) != 6 {
		t.Fatalf("found %d attention layers, want 6: %+v", len(d.Layers), d.Layers)
	}
	wantStride := []int{1, 1, 2, 2, 1, 1}
	for i, l := range d.Layers {
		wantKind := graph.Self
		if i%2 == 1 {
			wantKind = graph.Cross
		}
		if l.Kind != wantKind || l.Stride != wantStride[i] || l.Heads != f.net.Cfg.Heads || !l.Edited {
			t.Errorf("layer %d: %+v; want kind %s, stride %d, %d heads, edited", i, l, wantKind, wantStride[i], f.net.Cfg.Heads)
		}
		if v.scoped && l.Name != f.net.LayerNames()[i] {
			t.Errorf("layer %d is named %q, want %q", i, l.Name, f.net.LayerNames()[i])
		}
		wantDType := "float32"
		if v.fp16 && !f.net.Cfg.UpcastSoftmax {
			wantDType = "float16"
		}
		if l.DType != wantDType {
			t.Errorf("layer %s computes in %s, want %s", l.Name, l.DType, wantDType)
		}
	}
	if len(d.Maps) != 2 || d.Maps[0].Name != graph.MapsOutputName(1) || len(d.Maps[0].Layers) != 2 ||
		d.Maps[0].Layers[0] != d.Layers[1].Name || d.Maps[0].Layers[1] != d.Layers[5].Name ||
		d.Maps[1].Name != graph.MapsOutputName(2) || len(d.Maps[1].Layers) != 1 || d.Maps[1].Layers[0] != d.Layers[3].Name {
		t.Errorf("maps outputs %+v; want %s from the two full-resolution cross layers and %s from the half-resolution one",
			d.Maps, graph.MapsOutputName(1), graph.MapsOutputName(2))
	}
	if d.BlendMaps != graph.MapsOutputName(2) {
		t.Errorf("local blend reads %q, want %s", d.BlendMaps, graph.MapsOutputName(2))
	}
	wantIO := []string(nil)
	if f.net.Cfg.FP16IO {
		wantIO = []string{graph.SampleInput, graph.HiddenStatesInput, "out_sample"}
		if f.net.Cfg.TimestepType == onnxgraph.Float {
			wantIO = []string{graph.SampleInput, graph.TimestepInput, graph.HiddenStatesInput, "out_sample"}
		}
	}
	if fmt.Sprint(d.Float16IO) != fmt.Sprint(wantIO) || d.SampleType != "float32" || d.HiddenStatesType != "float32" {
		t.Errorf("float16 inputs and outputs converted: %v, sample %s, text states %s; want %v and float32",
			d.Float16IO, d.SampleType, d.HiddenStatesType, wantIO)
	}
	wantTimestep := "int64"
	if f.net.Cfg.TimestepType == onnxgraph.Float {
		wantTimestep = "float32"
	}
	if d.TimestepType != wantTimestep || d.Tokens != f.net.Cfg.Tokens || d.LatentFixed == f.net.Cfg.DynamicSpatial || d.Latent != (graph.Size{Height: 8, Width: 8}) {
		t.Errorf("description %+v", d)
	}
	stored, err := graph.ReadDescription(f.instPath)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(*stored) != fmt.Sprint(*d) {
		t.Errorf("stored description differs:\n%+v\n%+v", *stored, *d)
	}
}

func checkMaps(t *testing.T, what string, got map[string][]float32, want map[string][]float64, tol float64) {
	t.Helper()
	for name, w := range want {
		d, _ := maxDiff(got[name], w)
		t.Logf("%s %s vs reference: max |diff| %.2g", what, name, d)
		if d > tol {
			t.Fatalf("%s %s differs from the reference by %.3g > %.3g", what, name, d, tol)
		}
	}
}

func splitRows(v []float32, rows int) [][]float32 {
	n := len(v) / rows
	out := make([][]float32, rows)
	for i := range out {
		out[i] = v[i*n : (i+1)*n]
	}
	return out
}

func widen(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}
