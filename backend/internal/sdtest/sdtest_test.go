package sdtest

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"testing"

	"reword/backend/ort"
)

// Each component of a written folder runs in ONNX Runtime with Optimum's
// tensor names and SD's shapes: the text encoder's states are CrossDim
// wide, the VAE encoder maps an image to 8× smaller mean and log-variance,
// the decoder a latent to an 8× larger image, the UNet a latent to one of
// the same shape, at any latent size (Optimum's height and width are
// dynamic), and every output is finite.
func TestComponentsRunWithSDShapes(t *testing.T) {
	for _, f := range []Family{SD15, SD21} {
		t.Run(string(f), func(t *testing.T) {
			c := Small(f)
			dir := t.TempDir()
			if err := Write(dir, c); err != nil {
				t.Fatal(err)
			}
			ids := make([]int64, 2*77)
			for i := range ids {
				ids[i] = int64(49407) // EOS and padding
			}
			ids[0], ids[1], ids[77] = 49406, 2368, 49406
			text := runModel(t, filepath.Join(dir, "text_encoder/model.onnx"), "input_ids", []int64{2, 77}, ids)
			checkShape(t, text, "last_hidden_state", 2, 77, int64(c.CrossDim))
			checkShape(t, text, "pooler_output", 2, int64(c.CrossDim))
			px := int64(8 * c.SampleSize)
			enc := runModel(t, filepath.Join(dir, "vae_encoder/model.onnx"), "sample", []int64{1, 3, px, px}, noise(3*px*px))
			checkShape(t, enc, "latent_parameters", 1, 8, px/8, px/8)
			dec := runModel(t, filepath.Join(dir, "vae_decoder/model.onnx"), "latent_sample", []int64{1, 4, px / 8, px / 8}, noise(4*px*px/64))
			checkShape(t, dec, "sample", 1, 3, px, px)
			for _, side := range []int64{int64(c.SampleSize), 8} {
				unet := runUNet(t, filepath.Join(dir, "unet/model.onnx"), c, side)
				checkShape(t, unet, "out_sample", 2, 4, side, side)
			}
		})
	}
}

// The SDXL-shaped folder's components run with Optimum's SDXL names: two
// text encoders with every layer's states (the second with text_embeds),
// their widths adding up to the UNet's cross_attention_dim, and a UNet that
// also takes text_embeds and time_ids.
func TestSDXLComponentsRun(t *testing.T) {
	c := Small(SDXL)
	dir := t.TempDir()
	if err := Write(dir, c); err != nil {
		t.Fatal(err)
	}
	ids := make([]int64, 77)
	for i := range ids {
		ids[i] = 49407
	}
	ids[0] = 49406
	specs := c.textSpecs()
	first := runModel(t, filepath.Join(dir, "text_encoder/model.onnx"), "input_ids", []int64{1, 77}, ids)
	second := runModel(t, filepath.Join(dir, "text_encoder_2/model.onnx"), "input_ids", []int64{1, 77}, ids)
	checkShape(t, first, "pooler_output", 1, int64(specs[0].width))
	checkShape(t, second, "text_embeds", 1, int64(c.TextEmbedsDim))
	for i := 0; i <= c.TextLayers; i++ {
		checkShape(t, first, fmt.Sprintf("hidden_states.%d", i), 1, 77, int64(specs[0].width))
		checkShape(t, second, fmt.Sprintf("hidden_states.%d", i), 1, 77, int64(specs[1].width))
	}
	if specs[0].width+specs[1].width != c.CrossDim {
		t.Errorf("text widths %d + %d, the UNet takes %d", specs[0].width, specs[1].width, c.CrossDim)
	}
	side := int64(c.SampleSize)
	feeds := map[string][]float32{"sample": noise(2 * 4 * side * side), "timestep": {999, 999},
		"encoder_hidden_states": noise(2 * 77 * int64(c.CrossDim)), "text_embeds": noise(2 * int64(c.TextEmbedsDim)),
		"time_ids": {128, 128, 0, 0, 128, 128, 128, 128, 0, 0, 128, 128}}
	shapes := map[string][]int64{"sample": {2, 4, side, side}, "timestep": {2}, "encoder_hidden_states": {2, 77, int64(c.CrossDim)},
		"text_embeds": {2, int64(c.TextEmbedsDim)}, "time_ids": {2, 6}}
	values := map[string]ort.Value{}
	for name, data := range feeds {
		v, err := ort.NewTensor(shapes[name], data)
		if err != nil {
			t.Fatal(err)
		}
		defer v.Destroy()
		values[name] = v
	}
	checkShape(t, runFeeds(t, filepath.Join(dir, "unet/model.onnx"), values), "out_sample", 2, 4, side, side)
}

// Write is deterministic: the same config gives the same bytes.
func TestWriteIsDeterministic(t *testing.T) {
	c := Small(SD21)
	a, b := t.TempDir(), t.TempDir()
	for _, d := range []string{a, b} {
		if err := Write(d, c); err != nil {
			t.Fatal(err)
		}
	}
	for _, rel := range []string{"unet/model.onnx", "text_encoder/model.onnx", "vae_encoder/model.onnx", "unet/config.json"} {
		x, err := os.ReadFile(filepath.Join(a, rel))
		if err != nil {
			t.Fatal(err)
		}
		y, err := os.ReadFile(filepath.Join(b, rel))
		if err != nil || !bytes.Equal(x, y) {
			t.Errorf("%s differs between two writes (%v)", rel, err)
		}
	}
	if err := Write(t.TempDir(), Config{Family: SD15}); err == nil {
		t.Error("an empty config was accepted")
	}
}

// With ExternalData every component keeps its large weights in
// model.onnx_data, which ONNX Runtime reads; FixedLatent fixes the UNet's
// sample size.
func TestExternalDataRuns(t *testing.T) {
	c := Small(SD15)
	c.ExternalData, c.FixedLatent = true, true
	dir := t.TempDir()
	if err := Write(dir, c); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"unet", "text_encoder", "vae_encoder", "vae_decoder"} {
		onnx, err1 := os.Stat(filepath.Join(dir, sub, "model.onnx"))
		data, err2 := os.Stat(filepath.Join(dir, sub, externalFile))
		// The narrow VAE's weights are mostly under the 1 KB kept inside.
		if err1 != nil || err2 != nil || data.Size() == 0 || sub != "vae_encoder" && sub != "vae_decoder" && data.Size() < onnx.Size() {
			t.Fatalf("%s: %v %v: the weights are not outside model.onnx", sub, err1, err2)
		}
	}
	side := int64(c.SampleSize)
	checkShape(t, runUNet(t, filepath.Join(dir, "unet/model.onnx"), c, side), "out_sample", 2, 4, side, side)
}

// outputs are a model's outputs by name, with their shapes.
type outputs map[string]struct {
	data  []float32
	shape []int64
}

func runModel[T int64 | float32](t *testing.T, path, input string, shape []int64, data []T) outputs {
	t.Helper()
	in, err := ort.NewTensor(shape, data)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Destroy()
	return runFeeds(t, path, map[string]ort.Value{input: in})
}

func runUNet(t *testing.T, path string, c Config, side int64) outputs {
	t.Helper()
	sample, err := ort.NewTensor([]int64{2, 4, side, side}, noise(2*4*side*side))
	if err != nil {
		t.Fatal(err)
	}
	defer sample.Destroy()
	ts, err := ort.NewTensor([]int64{2}, []float32{999, 1})
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Destroy()
	ctx, err := ort.NewTensor([]int64{2, 77, int64(c.CrossDim)}, noise(2*77*int64(c.CrossDim)))
	if err != nil {
		t.Fatal(err)
	}
	defer ctx.Destroy()
	return runFeeds(t, path, map[string]ort.Value{"sample": sample, "timestep": ts, "encoder_hidden_states": ctx})
}

func runFeeds(t *testing.T, path string, feeds map[string]ort.Value) outputs {
	t.Helper()
	s, err := ort.NewSession(path, ort.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	outs, err := s.Run(feeds)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	defer outs.Destroy()
	got := outputs{}
	for _, o := range s.OutputInfo() {
		data, shape, err := outs.Float32(o.Name)
		if err != nil {
			t.Fatal(err)
		}
		got[o.Name] = struct {
			data  []float32
			shape []int64
		}{append([]float32(nil), data...), shape}
	}
	return got
}

func checkShape(t *testing.T, outs outputs, name string, want ...int64) {
	t.Helper()
	o, ok := outs[name]
	if !ok || fmt.Sprint(o.shape) != fmt.Sprint(want) {
		t.Fatalf("output %s has shape %v, want %v (outputs: %d)", name, o.shape, want, len(outs))
	}
	for i, v := range o.data {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("output %s[%d] is %v", name, i, v)
		}
	}
}

// noise is n deterministic values in [−1, 1).
func noise(n int64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32((i*7919)%2000)/1000 - 1
	}
	return v
}
