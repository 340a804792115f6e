package graph_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"reword/backend/graph"
	"reword/backend/graph/modelfile"
	"reword/backend/internal/sdtest"
)

// SD-1.5-, SD-2.1- and SDXL-shaped exports (backend/internal/sdtest:
// Optimum's layout and names, diffusers' modules, random weights):
// instrumenting finds each attention Softmax node (32 in SD, 140 in SDXL)
// under its diffusers module name, with its kind, resolution and head
// count, gives every cross-attention resolution a maps output, and local
// blend the 1/16 one, for either proj_in (SD 1.5's 1×1 conv, SD 2.1's and
// SDXL's Linear) and with SDXL's extra UNet inputs.
func TestSDShapedExportsAreInstrumented(t *testing.T) {
	for _, f := range []sdtest.Family{sdtest.SD15, sdtest.SD21, sdtest.SDXL} {
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
	total := map[sdtest.Family]int{sdtest.SD15: 32, sdtest.SD21: 32, sdtest.SDXL: 140}[cfg.Family]
	if len(desc.Layers) != len(want) || len(want) != total {
		t.Fatalf("found %d attention layers, the export has %d (the real UNet: %d)", len(desc.Layers), len(want), total)
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
// 64², 32², 16², 8²; SDXL at 1024 px: 64², 32²), finest first, and local
// blend on the one with 1/16 of the latent's positions (16×16 at 512 px,
// 32×32 at 1024 px).
func checkSDMaps(t *testing.T, cfg sdtest.Config, desc *graph.Description) {
	t.Helper()
	var got []string
	for _, m := range desc.Maps {
		got = append(got, fmt.Sprintf("%d:%d", m.Stride, len(m.Layers)))
	}
	// SD: strides 1, 2, 4 have two down and three up transformers each, 8
	// the mid block's; SDXL: stride 2 two down and three up transformers
	// of 2 blocks, stride 4 two down, the mid and three up of 10.
	want := map[sdtest.Family]string{sdtest.SD15: "[1:5 2:5 4:5 8:1]", sdtest.SD21: "[1:5 2:5 4:5 8:1]", sdtest.SDXL: "[2:10 4:60]"}[cfg.Family]
	if fmt.Sprint(got) != want {
		t.Errorf("maps outputs (stride:layers) %v, want %s", got, want)
	}
	if want := graph.MapsOutputName(4); desc.BlendMaps != want {
		t.Errorf("local blend reads %s, want %s (the %d×%d maps)", desc.BlendMaps, want, cfg.SampleSize/4, cfg.SampleSize/4)
	}
	if desc.Tokens != 0 || desc.TimestepType != "float32" || desc.SampleType != "float32" {
		t.Errorf("inputs: tokens %d, timestep %s, sample %s; want dynamic, float32, float32", desc.Tokens, desc.TimestepType, desc.SampleType)
	}
}

// TestFullSizeSD15 writes a full-size SD-1.5-shaped export (sdtest.Full:
// 3.4 GB of random UNet weights in external data, a fixed 64×64 latent)
// into $REWORD_SD_FULL_DIR and instruments it: 32 attention layers at
// 64×64 (4096 queries), 32×32, 16×16 and 8×8, with 8 heads each. The folder
// then serves `reword bench instrument -model $REWORD_SD_FULL_DIR -unets
// unet`. It needs minutes and 4 GB of disk, so it runs only when asked.
func TestFullSizeSD15(t *testing.T) {
	dir := os.Getenv("REWORD_SD_FULL_DIR")
	if dir == "" {
		t.Skip("set REWORD_SD_FULL_DIR to a folder to write the full-size SD-1.5-shaped export into")
	}
	cfg := sdtest.Full(sdtest.SD15)
	cfg.FixedLatent = true
	if err := sdtest.Write(dir, cfg); err != nil {
		t.Fatal(err)
	}
	desc, _, err := graph.InstrumentDir(dir, graph.Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkSDLayers(t, cfg, desc)
	checkSDMaps(t, cfg, desc)
	if l := desc.Layers[0]; l.Queries != 4096 || l.Heads != 8 {
		t.Errorf("first layer %s: %d queries, %d heads; want 4096 and 8", l.Name, l.Queries, l.Heads)
	}
}
