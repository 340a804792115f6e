package graph_test

import (
	"strings"
	"testing"

	"reword/backend/graph"
	"reword/backend/graph/internal/attnblock"
)

// A float32 cross layer skips its edit only when every W is 0 and every c
// is 1 (graph.editCross): a single entry of one target's W or c away from
// neutral runs the edit in every cross layer, as the Go reference computes
// it, and changes that target's maps and nothing before the cond target
// rows.
func TestCrossEditRunsOnAnyChangedControl(t *testing.T) {
	for _, layout := range []attnblock.Layout{attnblock.Classic, attnblock.SDPA} {
		cfg := attnblock.DefaultConfig()
		cfg.Layout = layout
		f := newFixture(t, cfg, editAllSelf, embedded)
		batch := graph.Batch(targets)
		in := randomInputs(cfg, batch, 5)
		neutral := graph.NoOpControls(targets, cfg.Tokens)
		_, neutralMaps := f.runInstrumented(t, in, neutral)
		last, k := targets-1, cfg.Tokens/2
		for _, c := range []struct {
			name   string
			change func(*graph.Controls)
		}{
			{"one c entry", func(ctl *graph.Controls) { ctl.CrossC[last*cfg.Tokens+k] = 0.5 }},
			{"one W entry", func(ctl *graph.Controls) { ctl.CrossW[(last*cfg.Tokens+k)*cfg.Tokens+k+1] = 0.25 }},
		} {
			ctl := graph.NoOpControls(targets, cfg.Tokens)
			c.change(&ctl)
			_, maps := f.runInstrumented(t, in, ctl)
			ref, err := f.net.Reference(in, &ctl, editAllSelf.SelfReplaceMaxQueries)
			if err != nil {
				t.Fatal(err)
			}
			checkMaps(t, layoutName(layout)+" "+c.name, maps, f.referenceMaps(ref), 1e-5)
			for _, m := range f.desc.Maps {
				got, was := splitRows(maps[m.Name], targets+1), splitRows(neutralMaps[m.Name], targets+1)
				for row := 0; row <= last; row++ {
					bitwiseEqual(t, c.name+" "+m.Name+" unchanged row", got[row], was[row])
				}
				if d, _ := maxDiff(got[last+1], widen(was[last+1])); d == 0 {
					t.Errorf("%s %s: %s left the last target's maps as they were: the edit did not run", layoutName(layout), m.Name, c.name)
				}
			}
		}
	}
}

func layoutName(l attnblock.Layout) string {
	if l == attnblock.SDPA {
		return "sdpa"
	}
	return "classic"
}

// No inserted node of the main graph reads a float32 cross layer's
// probabilities: the head mean is an output of the layer's If. ONNX
// Runtime orders nodes by a depth-first walk back from the outputs, so a
// head mean outside would run after the whole UNet and keep every layer's
// probabilities alive until then (measured: +214 MB of peak memory on a
// 64×64 SD-1.5-shaped UNet).
func TestProbabilitiesHaveNoInsertedReaders(t *testing.T) {
	net, err := attnblock.New(attnblock.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	m := net.Model()
	probs := map[string]bool{}
	for _, n := range m.GetGraph().GetNode() {
		if n.GetOpType() == "Softmax" {
			probs[n.GetOutput()[0]] = true
		}
	}
	desc, err := graph.Instrument(m, graph.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if cross, _ := desc.Count(graph.Cross); cross == 0 || len(probs) != len(desc.Layers) {
		t.Fatalf("%d Softmax outputs, %d layers, %d cross", len(probs), len(desc.Layers), cross)
	}
	for _, n := range m.GetGraph().GetNode() {
		for _, in := range n.GetInput() {
			if probs[in] && strings.Contains(n.GetName(), graph.NodeMarker) {
				t.Errorf("inserted node %s (%s) reads the probabilities %s", n.GetName(), n.GetOpType(), in)
			}
		}
	}
}
