package graph_test

import (
	"math"
	"testing"

	"reword/backend/graph"
	"reword/backend/graph/internal/attnblock"
)

// TestSelfLayersPerRun checks that the self-replace layers are a run's
// choice: one instrumented file, fed the weights of a limit, computes what
// the plain-Go reference computes with that limit, and what a file
// instrumented with that limit as its default computes, in every export
// variant.
func TestSelfLayersPerRun(t *testing.T) {
	for _, v := range variants() {
		t.Run(v.name, func(t *testing.T) {
			cfg := attnblock.DefaultConfig()
			v.cfg(&cfg)
			// The default limit on the 8×8 test network is 4 queries:
			// every self layer is off unless a run turns it on.
			f := newFixture(t, cfg, graph.Options{}, v.store)
			fixed := newFixture(t, cfg, graph.Options{SelfReplaceMaxQueries: 16}, v.store)
			in := randomInputs(cfg, graph.Batch(targets), 21)
			ctl := randomControls(targets, cfg.Tokens, 22)
			for k := range ctl.SelfW {
				ctl.SelfW[k] = 1 // the edit at full strength, so a wrong layer shows
			}
			limits := []int{0, 16, 64}
			var outs [][]float32
			var refs []attnblock.Result
			tol := 0.0
			for _, limit := range limits {
				out, _ := f.runInstrumentedLayers(t, in, ctl, f.desc.SelfLayerWeights(limit))
				ref, err := f.net.Reference(in, &ctl, limit)
				if err != nil {
					t.Fatal(err)
				}
				d, scale := maxDiff(out, ref.Out)
				tol = 1e-5 * math.Max(1, scale)
				if v.fp16 {
					tol = 3e-2 * math.Max(1, scale)
				}
				t.Logf("limit %d: output vs reference max |diff| %.2g (max |out| %.2g)", limit, d, scale)
				if d > tol {
					t.Errorf("limit %d: output differs from the reference by %.3g > %.3g", limit, d, tol)
				}
				outs, refs = append(outs, out), append(refs, ref)
				if limit == 16 {
					want, _ := fixed.runInstrumented(t, in, ctl)
					bitwiseEqual(t, "limit 16 per run vs instrumented with 16", out, want)
				}
			}
			// The limits pick different layers, and the check above tells
			// them apart: each output is far from the previous limit's
			// reference.
			for i := 1; i < len(outs); i++ {
				if d, _ := maxDiff(outs[i], refs[i-1].Out); d <= 10*tol {
					t.Errorf("limit %d is within %.3g of limit %d's reference: the test cannot tell the layers apart", limits[i], d, limits[i-1])
				}
			}
		})
	}
}

// TestSelfLayerScale checks that a layer's weight scales the targets' s:
// layer weight ½ with s = 1 is s = ½ with the layer on, bit for bit.
func TestSelfLayerScale(t *testing.T) {
	cfg := attnblock.DefaultConfig()
	f := newFixture(t, cfg, graph.Options{SelfReplaceMaxQueries: 64}, embedded)
	in := randomInputs(cfg, graph.Batch(targets), 23)
	ctl := randomControls(targets, cfg.Tokens, 24)
	half := f.desc.SelfLayerWeights(64)
	for k := range half {
		half[k] = 0.5
	}
	for k := range ctl.SelfW {
		ctl.SelfW[k] = 1
	}
	got, _ := f.runInstrumentedLayers(t, in, ctl, half)
	for k := range ctl.SelfW {
		ctl.SelfW[k] = 0.5
	}
	want, _ := f.runInstrumentedLayers(t, in, ctl, f.desc.SelfLayerWeights(64))
	bitwiseEqual(t, "layer weight ½ vs s = ½", got, want)

	// Every layer on under neutral controls is still the original model.
	noop := graph.NoOpControls(targets, cfg.Tokens)
	out, _ := f.runInstrumentedLayers(t, in, noop, f.desc.SelfLayerWeights(math.MaxInt))
	bitwiseEqual(t, "all layers on, s = 0", out, f.runOriginal(t, in))
}
