package diffusion

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"reword/backend/graph/modelfile"
	"reword/backend/internal/fp16export"
	"reword/backend/internal/sdtest"
	"reword/backend/ort"
	"reword/models/tiny/scene"
)

// fp16 exports past protobuf's 2 GB limit (SDXL's second text encoder is
// 2.8 GB in float32, 1.4 GB in float16), and those saved with external data
// on purpose, keep their weights in model.onnx_data. The engine rewrites
// the text encoders and VAE in memory for float32 inputs and outputs, and
// ONNX Runtime reads their weights from the export's folder (the UNet's
// instrumented copy is a file beside its weights already).

// TestFP16ExternalWeights runs SD-1.5- and SDXL-shaped fp16 exports whose
// every model keeps its weights in an external file: generation, an edit
// and a photo's VAE round trip stay within the tiny model's fp16 bounds
// of the float32 export's (compareFP16), and every model takes and
// returns float32.
func TestFP16ExternalWeights(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  sdtest.Config
	}{{"SD15", sdtest.Small(sdtest.SD15)}, {"SDXL", sdxlConfig()}} {
		t.Run(c.name, func(t *testing.T) {
			gen := GenerateRequest{Prompt: "a photo of a cat", Seed: 3, Steps: 2}
			s := spec(2, "a green circle")
			photo, _, _ := drawnPhoto(t, scene.Red, scene.Circle, scene.Left, 3)
			want := runFP16Checks(t, loadExport(t, c.cfg, false), gen, s, photo)
			e := loadExport(t, c.cfg, true)
			checkFloat32Sessions(t, e)
			compareFP16(t, runFP16Checks(t, e, gen, s, photo), want)
		})
	}
}

// loadExport writes the export of cfg, with fp16 set as an fp16 copy whose
// models keep their weights in model.onnx_data, instruments it at its own
// latent size and loads it.
func loadExport(t *testing.T, cfg sdtest.Config, fp16 bool) *Engine {
	t.Helper()
	dir := t.TempDir()
	if err := sdtest.Write(dir, cfg); err != nil {
		t.Fatal(err)
	}
	for _, sub := range []string{"text_encoder", "text_encoder_2", "unet", "vae_encoder", "vae_decoder"} {
		path := filepath.Join(dir, sub, "model.onnx")
		if _, err := os.Stat(path); !fp16 || os.IsNotExist(err) {
			continue
		}
		if err := fp16export.ConvertFile(path, path, fp16export.Options{}); err != nil {
			t.Fatal(err)
		}
		if err := sdtest.ExternalizeFile(path); err != nil {
			t.Fatal(err)
		}
		if m, err := modelfile.Read(path); err != nil || !m.HasExternalData() {
			t.Fatalf("%s: external data %v, %v", sub, m != nil && m.HasExternalData(), err)
		}
	}
	return instrumentAndLoad(t, dir, cfg, -1)
}

// checkFloat32Sessions checks that every model of e takes and returns
// float32 tensors (token ids: integers).
func checkFloat32Sessions(t *testing.T, e *Engine) {
	t.Helper()
	sessions := []*ort.Session{e.unet, e.decoder, e.encoder}
	for _, te := range e.texts {
		sessions = append(sessions, te.s)
	}
	for _, s := range sessions {
		for _, l := range [][]ort.Info{s.InputInfo(), s.OutputInfo()} {
			for _, i := range l {
				if i.DType != ort.Float32 && i.DType != ort.Int64 && i.DType != ort.Int32 {
					t.Errorf("%s: %s is %s, want float32", s.Name(), i.Name, i.DType)
				}
			}
		}
	}
}

// An fp16 VAE encoder that samples the posterior and keeps its weights in
// an external file gets both rewrites in memory (posterior mean, float32
// inputs and outputs) with its weights read where they are: it encodes a
// photo to the latents it gives with its weights embedded, bit for bit.
func TestFP16SamplingEncoderExternalWeights(t *testing.T) {
	data, _, _ := drawnPhoto(t, scene.Blue, scene.Square, scene.Right, 5)
	dir := samplingTiny(t)
	path := filepath.Join(dir, "vae_encoder", "model.onnx")
	if err := fp16export.ConvertFile(path, path, fp16export.Options{}); err != nil {
		t.Fatal(err)
	}
	encode := func() []float32 {
		t.Helper()
		e, err := Load(dir, Options{Instrument: true, Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		latents, err := e.encodePhoto(context.Background(), &Photo{Data: data})
		if err != nil {
			t.Fatal(err)
		}
		return latents
	}
	want := encode()
	if err := sdtest.ExternalizeFile(path); err != nil {
		t.Fatal(err)
	}
	if got := encode(); !slices.Equal(got, want) {
		t.Fatal("the encoder with external weights encodes the photo otherwise than with embedded ones")
	}
}
