package graph_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"reword/backend/graph"
	"reword/backend/graph/modelfile"
	"reword/backend/internal/sdtest"
)

// SD-1.5- and SD-2.1-shaped exports (backend/internal/sdtest: Optimum's
// layout and names, diffusers' modules, random weights): instrumenting
// finds each of the 32 attention Softmax nodes under its diffusers module
// name, with its kind, resolution and head count, gives every
// cross-attention resolution a maps output, and local blend the 1/16 one,
// for either proj_in (SD 1.5's 1×1 conv, SD 2.1's Linear).
func TestSDShapedExportsAreInstrumented(t *testing.T) {
	for _, f := range []sdtest.Family{sdtest.SD15, sdtest.SD21} {
		t.Run(string(f), func(t *testing.T) {
			cfg := sdtest.Small(f)
			dir := t.TempDir()
			if err := sdtest.Write(dir, cfg); err != nil {
				t.Fatal(err)
			}
			m, err := modelfile.Read(filepath.Join(dir, "unet", "model.onnx"))
			if err != nil {
				t.Fatal(err)
			}
			// Optimum leaves the sample's height and width dynamic.
			if _, fixed := graph.FixedLatent(m.Proto); fixed {
				t.Fatal("the export's sample size is fixed")
			}
			latent := graph.Size{Height: cfg.SampleSize, Width: cfg.SampleSize}
			desc, _, err := graph.InstrumentDir(dir, graph.Options{Latent: latent})
			if err != nil {
				t.Fatal(err)
			}
			checkSDLayers(t, cfg, desc)
			checkSDMaps(t, cfg, desc)
		})
	}
}

// checkSDLayers compares the layers found with those the builder made.
func checkSDLayers(t *testing.T, cfg sdtest.Config, desc *graph.Description) {
	t.Helper()
	want := cfg.Layers()
	if len(desc.Layers) != len(want) || len(want) != 32 {
		t.Fatalf("found %d attention layers, the export has %d (SD's UNet: 32)", len(desc.Layers), len(want))
	}
	for i, l := range desc.Layers {
		w := want[i]
		kind := graph.Self
		if w.Cross {
			kind = graph.Cross
		}
		side := cfg.SampleSize / w.Stride
		if l.Name != w.Name || l.Softmax != w.Name+"/Softmax" || l.Kind != kind || l.Stride != w.Stride ||
			l.Resolution != (graph.Size{Height: side, Width: side}) || l.Heads != w.Heads || l.DType != "float32" {
			t.Errorf("layer %d: %s %s stride %d %s heads %d %s (softmax %s); want %s %s stride %d %d×%d heads %d",
				i, l.Name, l.Kind, l.Stride, l.Resolution, l.Heads, l.DType, l.Softmax, w.Name, kind, w.Stride, side, side, w.Heads)
		}
		if kind == graph.Cross && !l.Edited {
			t.Errorf("cross-attention layer %s is not edited", l.Name)
		}
	}
}

// checkSDMaps: one maps output per cross-attention resolution (SD at 512 px:
// 64², 32², 16², 8²), finest first, and local blend on the one with 1/16 of
// the latent's positions (16×16 at 512 px).
func checkSDMaps(t *testing.T, cfg sdtest.Config, desc *graph.Description) {
	t.Helper()
	var got []string
	for _, m := range desc.Maps {
		got = append(got, fmt.Sprintf("%d:%d", m.Stride, len(m.Layers)))
	}
	// Strides 1, 2, 4: two down and three up transformers each; 8: mid.
	if fmt.Sprint(got) != "[1:5 2:5 4:5 8:1]" {
		t.Errorf("maps outputs (stride:layers) %v, want [1:5 2:5 4:5 8:1]", got)
	}
	if want := graph.MapsOutputName(4); desc.BlendMaps != want {
		t.Errorf("local blend reads %s, want %s (the %d×%d maps)", desc.BlendMaps, want, cfg.SampleSize/4, cfg.SampleSize/4)
	}
	if desc.Tokens != 0 || desc.TimestepType != "float32" || desc.SampleType != "float32" {
		t.Errorf("inputs: tokens %d, timestep %s, sample %s; want dynamic, float32, float32", desc.Tokens, desc.TimestepType, desc.SampleType)
	}
}
