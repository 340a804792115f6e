package graph_test

import (
	"fmt"
	"math"
	"math/rand"
	"os"
	"path/filepath"
	"testing"

	"reword/backend/graph"
	"reword/backend/graph/modelfile"
	"reword/backend/internal/sdtest"
	"reword/backend/ort"
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
			// Every resnet and transformer has GroupNorms, exported as
			// InstanceNormalization below opset 18.
			if want := countOps(t, filepath.Join(dir, "unet", "model.onnx"), "InstanceNormalization"); desc.NormLayers != want || want == 0 {
				t.Errorf("%d GroupNorms reached by the norm control; the export has %d InstanceNormalization nodes", desc.NormLayers, want)
			}
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
	instrumentFullSize(t, "REWORD_SD_FULL_DIR", sdtest.SD15, 8)
}

// TestFullSizeSDXL writes a full-size SDXL-shaped export (sdtest.Full: the
// UNet's 10 GB of random float32 weights in external data, a fixed 128×128
// latent for 1024 px images; two text encoders and the VAE beside it) into
// $REWORD_SDXL_FULL_DIR and instruments it: 140 attention layers at 64×64
// (4096 queries, 10 heads) and 32×32 (1024 queries, 20 heads). The folder
// then serves `reword bench instrument -model $REWORD_SDXL_FULL_DIR -unets
// unet -separate` (the UNet is too large to load twice on a 24 GB machine).
// It needs minutes and 12 GB of disk, so it runs only when asked.
func TestFullSizeSDXL(t *testing.T) {
	instrumentFullSize(t, "REWORD_SDXL_FULL_DIR", sdtest.SDXL, 10)
}

// instrumentFullSize writes the full-size export of family f into the
// folder $env names (skipping when it is unset), instruments it, and checks
// every layer and maps output, and that the first layer has 4096 queries
// and heads heads.
func instrumentFullSize(t *testing.T, env string, f sdtest.Family, heads int) {
	t.Helper()
	dir := os.Getenv(env)
	if dir == "" {
		t.Skipf("set %s to a folder to write the full-size export into", env)
	}
	cfg := sdtest.Full(f)
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
	if l := desc.Layers[0]; l.Queries != 4096 || l.Heads != heads {
		t.Errorf("first layer %s: %d queries, %d heads; want 4096 and %d", l.Name, l.Queries, l.Heads, heads)
	}
}

// On the SDXL-shaped UNet (text_embeds and time_ids besides the usual
// inputs), the instrumented graph with neutral controls gives the export's
// output bit for bit, and random controls change it, as do the source's
// GroupNorm means alone: the rewrite holds with
// SDXL's layout and extra inputs (backend/diffusion runs the whole
// engine on it). The lowest blocks are 2 transformer blocks deep instead of 10, which
// keeps ONNX Runtime's session setup (most of this test's time) short.
func TestSDXLShapedNeutralControlsAreNoOp(t *testing.T) {
	cfg := sdtest.Small(sdtest.SDXL)
	cfg.Depth = []int{1, 2, 2}
	dir := t.TempDir()
	if err := sdtest.Write(dir, cfg); err != nil {
		t.Fatal(err)
	}
	side := cfg.SampleSize
	desc, instPath, err := graph.InstrumentDir(dir, graph.Options{Latent: graph.Size{Height: side, Width: side}})
	if err != nil {
		t.Fatal(err)
	}
	orig, err := openFloat32IO(filepath.Join(dir, "unet", "model.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	inst, err := ort.NewSession(instPath, ort.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer inst.Close()
	const targets = 1
	feeds := sdxlFeeds(t, cfg, graph.Batch(targets))
	defer destroy(feeds)
	want := runOut(t, orig, feeds)
	norm := graph.NoOpControls(targets, 77)
	for e := range norm.NormW {
		norm.NormW[e] = 1
	}
	for name, ctl := range map[string]graph.Controls{"neutral": graph.NoOpControls(targets, 77), "random": randomControls(targets, 77, 3), "norm": norm} {
		all := map[string]ort.Value{}
		for k, v := range feeds {
			all[k] = v
		}
		addControls(t, all, desc, ctl)
		got := runOut(t, inst, all)
		same := true
		for i := range want {
			same = same && math.Float32bits(got[i]) == math.Float32bits(want[i])
		}
		if same != (name == "neutral") {
			t.Errorf("%s controls: output equal to the export's: %v", name, same)
		}
		for k := range all {
			if _, own := feeds[k]; !own {
				all[k].Destroy()
			}
		}
	}
}

// sdxlFeeds are random inputs of the SDXL-shaped UNet at the given batch.
func sdxlFeeds(t *testing.T, cfg sdtest.Config, batch int) map[string]ort.Value {
	t.Helper()
	r := rand.New(rand.NewSource(1))
	b, side := int64(batch), int64(cfg.SampleSize)
	ts := make([]float32, batch)
	ids := make([]float32, 6*batch)
	for i := range ts {
		ts[i] = 501
		copy(ids[6*i:], []float32{1024, 1024, 0, 0, 1024, 1024})
	}
	data := map[string][]float32{"sample": normal(r, batch*4*cfg.SampleSize*cfg.SampleSize), "timestep": ts,
		"encoder_hidden_states": normal(r, batch*77*cfg.CrossDim), "text_embeds": normal(r, batch*cfg.TextEmbedsDim), "time_ids": ids}
	shapes := map[string][]int64{"sample": {b, 4, side, side}, "timestep": {b}, "encoder_hidden_states": {b, 77, int64(cfg.CrossDim)},
		"text_embeds": {b, int64(cfg.TextEmbedsDim)}, "time_ids": {b, 6}}
	feeds := map[string]ort.Value{}
	for name, v := range data {
		tensor, err := ort.NewTensor(shapes[name], v)
		if err != nil {
			destroy(feeds)
			t.Fatal(err)
		}
		feeds[name] = tensor
	}
	return feeds
}

// runOut runs s on feeds and returns a copy of out_sample.
func runOut(t *testing.T, s *ort.Session, feeds map[string]ort.Value) []float32 {
	t.Helper()
	outs, err := s.Run(feeds)
	if err != nil {
		t.Fatal(err)
	}
	defer outs.Destroy()
	out, _, err := outs.Float32("out_sample")
	if err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), out...)
}
