package graph_test

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"

	"reword/backend/graph"
	"reword/backend/graph/internal/attnblock"
	"reword/backend/ort"
	"reword/models/tiny/tinytest"
)

// tinyUNet copies one of the tiny model's UNet exports (unet or unet_sdpa)
// into a temporary folder, so instrumenting never writes into the repository.
func tinyUNet(t *testing.T, sub string) string {
	t.Helper()
	src := filepath.Join(tinytest.Dir(t), sub, graph.OriginalFile)
	dst := filepath.Join(t.TempDir(), graph.UNetDir)
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Dir(src))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() || e.Name() == graph.InstrumentedFile {
			continue
		}
		copyFile(t, filepath.Join(filepath.Dir(src), e.Name()), filepath.Join(dst, e.Name()))
	}
	return filepath.Dir(dst)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// tinyRun feeds the tiny UNet; it knows the model's input shapes.
type tinyRun struct {
	desc                *graph.Description
	latent, tokens, ctx int
}

func (r tinyRun) inputs(batch int, seed int64) attnblock.Inputs {
	cfg := attnblock.Config{Channels: 4, Height: r.latent, Width: r.latent, Tokens: r.tokens, CtxDim: r.ctx}
	return randomInputs(cfg, batch, seed)
}

func (r tinyRun) run(t *testing.T, s *ort.Session, in attnblock.Inputs, ctl *graph.Controls) ort.Outputs {
	t.Helper()
	return r.runAsking(t, s, in, ctl, nil)
}

// runAsking is run asking for the maps outputs wanted (nil: all of them).
func (r tinyRun) runAsking(t *testing.T, s *ort.Session, in attnblock.Inputs, ctl *graph.Controls, wanted []float32) ort.Outputs {
	t.Helper()
	b := int64(in.Batch)
	feeds := unetFeeds(t, r.desc, []int64{b, 4, int64(r.latent), int64(r.latent)}, []int64{b, int64(r.tokens), int64(r.ctx)}, in)
	defer destroy(feeds)
	if ctl != nil {
		addControls(t, feeds, r.desc, *ctl)
		if wanted != nil {
			setMapsWanted(t, feeds, wanted)
		}
	}
	outs, err := s.Run(feeds)
	if err != nil {
		t.Fatal(err)
	}
	return outs
}

func float32Output(t *testing.T, outs ort.Outputs, name string) []float32 {
	t.Helper()
	v, _, err := outs.Float32(name)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// mapsOutput returns a maps output after checking its shape [1+E, N, T].
func mapsOutput(t *testing.T, outs ort.Outputs, m graph.MapsOutput, targets, tokens int) []float32 {
	t.Helper()
	v, shape, err := outs.Float32(m.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(shape) != 3 || shape[0] != int64(1+targets) || shape[1] != int64(m.Resolution.Positions()) || shape[2] != int64(tokens) {
		t.Fatalf("%s has shape %v, want [%d %d %d]", m.Name, shape, 1+targets, m.Resolution.Positions(), tokens)
	}
	return v
}

// TestTinyModel instruments both of the tiny model's UNet exports and checks
// the engine's invariants on the full networks.
func TestTinyModel(t *testing.T) {
	descs := map[string]*graph.Description{}
	for _, sub := range []string{"unet", "unet_sdpa"} {
		t.Run(sub, func(t *testing.T) {
			dir := tinyUNet(t, sub)
			desc, instPath, err := graph.InstrumentDir(dir, graph.Options{})
			if err != nil {
				t.Fatal(err)
			}
			descs[sub] = desc
			checkTinyDescription(t, desc)
			orig, err := ort.NewSession(filepath.Join(dir, graph.UNetDir, graph.OriginalFile), ort.Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer orig.Close()
			inst, err := ort.NewSession(instPath, ort.Options{Threads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer inst.Close()
			ctxInfo, _ := orig.Input(graph.HiddenStatesInput)
			r := tinyRun{desc: desc, latent: desc.Latent.Height, tokens: desc.Tokens, ctx: int(ctxInfo.Shape[2])}

			for _, targets := range []int{1, 2} {
				batch := graph.Batch(targets)
				in := r.inputs(batch, int64(10+targets))
				o := r.run(t, orig, in, nil)
				want := float32Output(t, o, "out_sample")
				o.Destroy()
				rowLen := len(want) / batch
				unedited := (batch - targets) * rowLen

				// (a) no-op controls: bit for bit the original model.
				noop := graph.NoOpControls(targets, r.tokens)
				o = r.run(t, inst, in, &noop)
				bitwiseEqual(t, fmt.Sprintf("E=%d (a) no-op output", targets), float32Output(t, o, "out_sample"), want)
				o.Destroy()

				// (b) W = I, c = 0: targets' maps are the source's, and the
				// rows before the targets keep the original output.
				ident := identityControls(targets, r.tokens)
				o = r.run(t, inst, in, &ident)
				out := float32Output(t, o, "out_sample")
				bitwiseEqual(t, fmt.Sprintf("E=%d (b) unedited rows", targets), out[:unedited], want[:unedited])
				for _, m := range desc.Maps {
					rows := splitRows(mapsOutput(t, o, m, targets, r.tokens), targets+1)
					for e := 1; e <= targets; e++ {
						bitwiseEqual(t, fmt.Sprintf("E=%d (b) %s target %d", targets, m.Name, e), rows[e], rows[0])
					}
				}
				o.Destroy()

				// (c) random W with c = 0, self-replace on: each target's
				// maps are the source's maps times its W (the edit is linear
				// in A_src and the maps average it), and the rows before the
				// targets are untouched.
				ctl := randomControls(targets, r.tokens, 21)
				for i := range ctl.CrossC {
					ctl.CrossC[i] = 0
				}
				o = r.run(t, inst, in, &ctl)
				out = float32Output(t, o, "out_sample")
				bitwiseEqual(t, fmt.Sprintf("E=%d (c) unedited rows", targets), out[:unedited], want[:unedited])
				if d, _ := maxDiff(out[unedited:], widen(want[unedited:])); d < 1e-3 {
					t.Errorf("E=%d (c) random controls moved the target rows by only %.3g", targets, d)
				}
				for _, m := range desc.Maps {
					maps := mapsOutput(t, o, m, targets, r.tokens)
					worst := checkMapsAreSourceTimesW(t, maps, ctl, m.Resolution.Positions())
					t.Logf("E=%d (c) %s: max |target − source·W| %.2g", targets, m.Name, worst)
				}
				o.Destroy()

				// (d) maps asked for one output at a time, and none.
				for _, c := range []graph.Controls{noop, ctl} {
					checkMapsAsked(t, r, inst, in, c, targets)
				}
			}
		})
	}
	if a, b := descs["unet"], descs["unet_sdpa"]; a != nil && b != nil {
		for i := range a.Layers {
			la, lb := a.Layers[i], b.Layers[i]
			la.DType, lb.DType = "", ""
			if la != lb {
				t.Errorf("the two layouts describe layer %d differently: %+v vs %+v", i, la, lb)
			}
		}
	}
}

// checkMapsAsked runs the instrumented UNet asking for every maps output,
// for each one alone and for none: the UNet's output and every asked-for
// output are the same bit for bit whatever else is asked, and an output not
// asked for is empty, [0, N, T].
func checkMapsAsked(t *testing.T, r tinyRun, inst *ort.Session, in attnblock.Inputs, ctl graph.Controls, targets int) {
	t.Helper()
	all := r.runAsking(t, inst, in, &ctl, nil)
	defer all.Destroy()
	want := float32Output(t, all, "out_sample")
	for only := -1; only < len(r.desc.Maps); only++ {
		wanted := make([]float32, len(r.desc.Maps))
		what := "no maps"
		if only >= 0 {
			wanted[only] = 1
			what = r.desc.Maps[only].Name + " alone"
		}
		o := r.runAsking(t, inst, in, &ctl, wanted)
		bitwiseEqual(t, fmt.Sprintf("E=%d, %s: output", targets, what), float32Output(t, o, "out_sample"), want)
		for i, m := range r.desc.Maps {
			if i == only {
				bitwiseEqual(t, fmt.Sprintf("E=%d, %s: %s", targets, what, m.Name),
					mapsOutput(t, o, m, targets, r.tokens), mapsOutput(t, all, m, targets, r.tokens))
				continue
			}
			v, shape, err := o.Float32(m.Name)
			if err != nil {
				t.Fatal(err)
			}
			if len(v) != 0 || len(shape) != 3 || shape[0] != 0 || shape[1] != int64(m.Resolution.Positions()) || shape[2] != int64(r.tokens) {
				t.Errorf("E=%d, %s: %s has shape %v (%d values), want [0 %d %d]", targets, what, m.Name, shape, len(v), m.Resolution.Positions(), r.tokens)
			}
		}
		o.Destroy()
	}
}

// checkMapsAreSourceTimesW checks target rows of a maps output [1+E, N, T]
// against source·W_e within 1e-5 and returns the largest difference.
func checkMapsAreSourceTimesW(t *testing.T, maps []float32, ctl graph.Controls, queries int) float64 {
	t.Helper()
	T := ctl.Tokens
	worst := 0.0
	for e := 0; e < ctl.Targets; e++ {
		for q := 0; q < queries; q++ {
			src := maps[q*T : (q+1)*T]
			tgt := maps[((e+1)*queries+q)*T : ((e+1)*queries+q+1)*T]
			for n := 0; n < T; n++ {
				s := 0.0
				for w := 0; w < T; w++ {
					s += float64(src[w]) * float64(ctl.CrossW[(e*T+w)*T+n])
				}
				worst = math.Max(worst, math.Abs(s-float64(tgt[n])))
			}
		}
	}
	if worst > 1e-5 {
		t.Fatalf("target maps differ from source·W by %.3g", worst)
	}
	return worst
}

func checkTinyDescription(t *testing.T, d *graph.Description) {
	t.Helper()
	cross, crossEdited := d.Count(graph.Cross)
	self, selfEdited := d.Count(graph.Self)
	t.Logf("tiny model: %d cross (%d edited), %d self (%d self-replace ≤ %d queries), maps %+v",
		cross, crossEdited, self, selfEdited, d.SelfReplaceMaxQueries, d.Maps)
	if cross == 0 || cross != crossEdited || self != cross {
		t.Errorf("expected a transformer block (attn1 + attn2) per attention module, all cross layers edited: %d cross (%d edited), %d self", cross, crossEdited, self)
	}
	if d.Latent != (graph.Size{Height: 16, Width: 16}) || !d.LatentFixed || d.Tokens != 77 {
		t.Errorf("latent %s (fixed %v), tokens %d; the tiny model is 16×16 with 77 tokens", d.Latent, d.LatentFixed, d.Tokens)
	}
	if d.SelfReplaceMaxQueries != 16 {
		t.Errorf("default self-replace limit %d, want 16 (16×16 latent / 16)", d.SelfReplaceMaxQueries)
	}
	for _, l := range d.Layers {
		if l.Heads <= 0 {
			t.Errorf("layer %s: head count not found", l.Name)
		}
		// Every self layer can take the edit; the default limit only
		// chooses which do when a run does not say.
		if l.Kind == graph.Self && !l.Edited {
			t.Errorf("self layer %s (%d queries) edited=%v", l.Name, l.Queries, l.Edited)
		}
	}
	// One maps output per cross-attention resolution, finest first, each
	// averaging every cross layer of its stride; local blend reads the 4×4
	// one (the coarsest with at least 256/16 positions).
	want := []struct {
		name string
		res  graph.Size
	}{{"p2p_maps_div1", graph.Size{Height: 16, Width: 16}}, {"p2p_maps_div2", graph.Size{Height: 8, Width: 8}}, {"p2p_maps_div4", graph.Size{Height: 4, Width: 4}}}
	if len(d.Maps) != len(want) {
		t.Fatalf("%d maps outputs %+v, want %d", len(d.Maps), d.Maps, len(want))
	}
	averaged := 0
	for i, m := range d.Maps {
		if m.Name != want[i].name || m.Resolution != want[i].res || m.Stride != 1<<i || len(m.Layers) == 0 {
			t.Errorf("maps output %d: %+v, want %s at %s", i, m, want[i].name, want[i].res)
		}
		for _, name := range m.Layers {
			for _, l := range d.Layers {
				if l.Name == name && (l.Kind != graph.Cross || l.Stride != m.Stride || l.Maps != m.Name) {
					t.Errorf("output %s averages layer %+v", m.Name, l)
				}
			}
		}
		averaged += len(m.Layers)
	}
	if averaged != cross {
		t.Errorf("the maps outputs average %d layers; the model has %d cross layers", averaged, cross)
	}
	if d.BlendMaps != "p2p_maps_div4" || d.Layout != graph.LayoutVersion || d.CheckLayout() != nil {
		t.Errorf("local blend reads %q (layout %d: %v); want p2p_maps_div4 in layout %d", d.BlendMaps, d.Layout, d.CheckLayout(), graph.LayoutVersion)
	}
	if d.TimestepType != "float32" {
		t.Errorf("timestep type %s; the tiny model's export takes float32", d.TimestepType)
	}
}
