package diffusion

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"reword/backend/graph"
	"reword/backend/graph/modelfile"
	"reword/backend/internal/fp16export"
	"reword/backend/model"
	"reword/backend/ort"
	"reword/models/tiny/scene"
	"reword/models/tiny/tinytest"
	"reword/shared/clip"
	"reword/shared/edit"
)

// fp16Tiny returns a private copy of the tiny model whose four ONNX files
// are float16 exports of the float32 ones, float16 inputs and outputs
// included, as GPU users' --fp16 exports come (fp16export).
func fp16Tiny(t *testing.T, opts fp16export.Options) string {
	t.Helper()
	dir := tinytest.Private(t)
	m, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{m.TextEncoder.File, m.UNet.File, m.VAEDecoder.File, m.VAEEncoder.File} {
		if err := fp16export.ConvertFile(m.Path(f), m.Path(f), opts); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Tolerances of the fp16 copies against the float32 model. An fp16 run is
// not the float32 run: weights and activations are rounded to 11
// significant bits and the differences grow over the steps. Measured on
// the tiny model (8 DDIM steps, 64×64, ONNX Runtime 1.24.1's CPU
// provider): 51.9–66.7 dB for generated and edited images, 65.6 dB for
// the round trip, with the Softmax in float16 or upcast. The bounds leave
// room for a retrained tiny model and still mean the same image (40 dB is
// an RMS error of 2.6 levels of 255).
const (
	// minFP16PSNR bounds the PSNR of every generated or edited image.
	minFP16PSNR = 40.0
	// minFP16RoundTripPSNR bounds the PSNR of a photo's VAE round trip.
	minFP16RoundTripPSNR = 50.0
	// maxFP16HeatMapDiff bounds the heat maps' difference (attention
	// probabilities averaged over steps, heads and layers), measured at
	// 2–3·10⁻⁴.
	maxFP16HeatMapDiff = 0.01
	// maxFP16LatentDiff bounds an fp16 VAE encoder's latents' difference
	// from the float32 encoder's, relative to their largest magnitude
	// (measured: 3·10⁻⁴, 0.0012 at latents up to 3.6).
	maxFP16LatentDiff = 0.01
)

// TestFP16ModelMatchesFloat32 runs generation, an edit and a photo's VAE
// round trip on fp16 copies of the tiny model, with float16 Softmax and
// with the Softmax upcast to float32, against the float32 model.
func TestFP16ModelMatchesFloat32(t *testing.T) {
	ref := loadTiny(t, Options{CacheBytes: -1})
	gen := GenerateRequest{Prompt: "a blue square", Seed: 3, Steps: 8}
	s := spec(8, "a green circle", "a red square")
	photo, _, _ := drawnPhoto(t, scene.Colour(2), scene.Shape(1), scene.Position(0), 5)
	want := runFP16Checks(t, ref, gen, s, photo)
	for _, upcast := range []bool{false, true} {
		t.Run(fmt.Sprintf("upcast-softmax=%v", upcast), func(t *testing.T) {
			e, err := Load(fp16Tiny(t, fp16export.Options{UpcastSoftmax: upcast}), Options{Instrument: true, Threads: 1, CacheBytes: -1})
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			checkFP16UNet(t, e, upcast)
			checkNeutralIsNoOp(t, e)
			compareFP16(t, runFP16Checks(t, e, gen, s, photo), want)
		})
	}
}

// compareFP16 checks each image and heat map of an fp16 run against the
// float32 run's.
func compareFP16(t *testing.T, got, want []namedImage) {
	t.Helper()
	for i, w := range want {
		p := psnrRGB(got[i].rgb, w.rgb)
		limit := minFP16PSNR
		if w.name == "round trip" {
			limit = minFP16RoundTripPSNR
		}
		t.Logf("%s: PSNR %.1f dB against float32", w.name, p)
		if p < limit {
			t.Errorf("%s: PSNR %.1f dB against the float32 model, want ≥ %.0f", w.name, p, limit)
		}
		if w.heat == nil {
			continue
		}
		h := heatMapDiff(got[i].heat, w.heat)
		t.Logf("%s: heat maps max |diff| %.2g", w.name, h)
		if h > maxFP16HeatMapDiff {
			t.Errorf("%s: heat maps differ from the float32 model's by up to %.3g, want ≤ %g", w.name, h, maxFP16HeatMapDiff)
		}
	}
}

// namedImage is one image of a run, with the heat maps of its row (edits).
type namedImage struct {
	name string
	rgb  []byte
	heat [][]float32
}

// runFP16Checks generates, edits (source and two targets), tries a norm
// window and round-trips a photo on e.
func runFP16Checks(t *testing.T, e *Engine, gen GenerateRequest, s edit.Spec, photo []byte) []namedImage {
	t.Helper()
	ctx := context.Background()
	g, err := e.Generate(ctx, gen, RunOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := []namedImage{{name: "generate", rgb: g.Images[0].RGB}}
	res, err := e.Edit(ctx, s, RunOptions{HeatMaps: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i, img := range res.Images {
		out = append(out, namedImage{name: fmt.Sprintf("edit row %d", i), rgb: img.RGB, heat: res.HeatMaps[i].Maps})
	}
	// An fp16 UNet's GroupNorms are float16, which the norm control leaves
	// alone (backend/graph): a norm window is refused, naming the field;
	// on the float32 model it runs.
	normed := s.Clone()
	normed.Norm = &edit.Window{End: 0.5}
	_, err = e.Edit(ctx, normed, RunOptions{}, nil)
	var probs edit.Problems
	if fp16 := e.desc.Float16IO != nil; fp16 != (err != nil) || err != nil && (!errors.As(err, &probs) || probs[0].Field != "norm" || !strings.Contains(err.Error(), "float16")) {
		t.Errorf("a norm window on a UNet with float16 I/O %v: %v; want a refusal naming norm exactly on the fp16 copy", fp16, err)
	}
	// The manifest's norm default, where it sets one, is the float32
	// model's only: the fp16 copy's defaults say it runs without.
	if got, stated := e.Defaults().Norm, e.manifest.Defaults.Norm; e.desc.Float16IO != nil && got != (edit.Window{}) ||
		e.desc.Float16IO == nil && got != edit.Fraction(stated) {
		t.Errorf("float16 I/O %v: default norm %+v, the manifest states %v", e.desc.Float16IO != nil, got, stated)
	}
	if e.TakesNorm() == (e.desc.Float16IO != nil) {
		t.Errorf("float16 I/O %v: TakesNorm %v", e.desc.Float16IO != nil, e.TakesNorm())
	}
	rt, err := e.RoundTrip(ctx, Photo{Data: photo})
	if err != nil {
		t.Fatal(err)
	}
	return append(out, namedImage{name: "round trip", rgb: rt.RGB})
}

// checkFP16UNet checks what the instrumentation made of the fp16 UNet:
// float32 inputs and outputs for the engine, the attention edit in the
// precision the Softmax computes in, float32 attention maps.
func checkFP16UNet(t *testing.T, e *Engine, upcast bool) {
	t.Helper()
	desc, err := graph.ReadDescription(e.unet.Name())
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(desc.Float16IO) != fmt.Sprint([]string{"sample", "timestep", "encoder_hidden_states", "out_sample"}) {
		t.Errorf("converted inputs and outputs %v", desc.Float16IO)
	}
	wantDType := "float16"
	if upcast {
		wantDType = "float32"
	}
	for _, l := range desc.Layers {
		if l.DType != wantDType {
			t.Errorf("layer %s edits in %s, want %s", l.Name, l.DType, wantDType)
		}
	}
	for _, list := range [][]ort.Info{e.unet.InputInfo(), e.unet.OutputInfo(), e.texts[0].s.OutputInfo(), e.decoder.InputInfo(),
		e.decoder.OutputInfo(), e.encoder.InputInfo(), e.encoder.OutputInfo()} {
		for _, i := range list {
			if i.DType != ort.Float32 && i.DType != ort.Int64 && i.DType != ort.Int32 {
				t.Errorf("%s is %s: the engine feeds and reads float32", i.Name, i.DType)
			}
		}
	}
}

// checkNeutralIsNoOp runs the instrumented fp16 UNet with neutral controls
// and the fp16 export as it is (through graph.Float32IO, as the engine
// opens every model) on the same random batch: the outputs must be equal
// bit for bit.
func checkNeutralIsNoOp(t *testing.T, e *Engine) {
	t.Helper()
	m := e.manifest
	orig, err := openSession(m, m.UNet.File, "UNet", ort.Options{Threads: 1}, graph.Float32IORewrite)
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	const targets = 2
	batch := graph.Batch(targets)
	r := rand.New(rand.NewPCG(5, 6))
	text := condition{hidden: make([]float32, batch*clip.ContextLength*e.hidden)}
	for i := range text.hidden {
		text.hidden[i] = float32(r.NormFloat64())
	}
	if e.pooled > 0 {
		text.pooled = make([]float32, batch*e.pooled)
		for i := range text.pooled {
			text.pooled[i] = float32(r.NormFloat64())
		}
	}
	u, err := e.bindUNet(batch, 1+targets, targets, text, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer u.close()
	for i := range u.sample {
		u.sample[i] = float32(r.NormFloat64())
	}
	if err := u.run(context.Background(), 501); err != nil {
		t.Fatal(err)
	}
	feeds := map[string]ort.Value{}
	for _, name := range []string{graph.SampleInput, graph.TimestepInput, graph.HiddenStatesInput, TextEmbedsInput, TimeIDsInput} {
		if v, ok := u.inputs[name]; ok {
			feeds[name] = v
		}
	}
	if e.timestepScalar { // made by every run, and gone after it
		ts, err := u.scalarTimestep(501)
		if err != nil {
			t.Fatal(err)
		}
		defer ts.Destroy()
		feeds[graph.TimestepInput] = ts
	}
	outs, err := orig.Run(feeds)
	if err != nil {
		t.Fatal(err)
	}
	defer outs.Destroy()
	want, _, err := outs.Float32(m.UNet.Output)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		if math.Float32bits(u.out[i]) != math.Float32bits(want[i]) {
			t.Fatalf("neutral controls: output %d is %v, the fp16 export gives %v", i, u.out[i], want[i])
		}
	}
}

// heatMapDiff is the largest difference between two rows' heat maps.
func heatMapDiff(a, b [][]float32) float64 {
	d := 0.0
	for k := range a {
		for i := range a[k] {
			d = math.Max(d, math.Abs(float64(a[k][i])-float64(b[k][i])))
		}
	}
	return d
}

// An fp16 VAE encoder that samples the posterior (diffusers' conversion
// script with --fp16) gets both rewrites when it loads, the posterior mean
// first: the same photo then encodes to the same latents load after load,
// close to the float32 encoder's mean.
func TestFP16SamplingEncoder(t *testing.T) {
	data, _, _ := drawnPhoto(t, scene.Blue, scene.Square, scene.Right, 5)
	ctx := context.Background()
	want, err := loadTiny(t, Options{}).encodePhoto(ctx, &Photo{Data: data})
	if err != nil {
		t.Fatal(err)
	}
	dir := samplingTiny(t)
	path := filepath.Join(dir, "vae_encoder", "model.onnx")
	if err := fp16export.ConvertFile(path, path, fp16export.Options{}); err != nil {
		t.Fatal(err)
	}
	var first []float32
	for load := range 2 {
		e, err := Load(dir, Options{Instrument: true, Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		got, err := e.encodePhoto(ctx, &Photo{Data: data})
		e.Close()
		if err != nil {
			t.Fatal(err)
		}
		if load == 0 {
			first = got
			var d, scale float64
			for i := range got {
				d = math.Max(d, math.Abs(float64(got[i]-want[i])))
				scale = math.Max(scale, math.Abs(float64(want[i])))
			}
			t.Logf("fp16 sampling encoder vs float32 mean: max |diff| %.3g (max |latent| %.3g)", d, scale)
			if d > maxFP16LatentDiff*scale {
				t.Errorf("fp16 encoder's mean differs from the float32 one by %.3g, over %g of its range %.3g", d, maxFP16LatentDiff, scale)
			}
		} else if !slices.Equal(got, first) {
			t.Fatal("two loads of the fp16 sampling encoder encode the same photo differently")
		}
	}
}

// An fp16 export instrumented by an earlier build kept its float16 inputs,
// which this engine does not feed: Load asks for the instrumentation again,
// or redoes it when allowed.
func TestEarlierFP16InstrumentationIsRedone(t *testing.T) {
	dir := fp16Tiny(t, fp16export.Options{})
	e, err := Load(dir, Options{Instrument: true, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	path := filepath.Join(dir, graph.UNetDir, graph.InstrumentedFile)
	m, err := modelfile.Read(path)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := graph.ReadDescription(path)
	if err != nil {
		t.Fatal(err)
	}
	// The earlier build's description: the export's own input types.
	desc.SampleType, desc.HiddenStatesType, desc.Float16IO = "float16", "float16", nil
	text, err := json.Marshal(desc)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range m.Proto.GetMetadataProps() {
		if p.GetKey() == graph.DescriptionKey {
			p.Value = proto.String(string(text))
		}
	}
	tmp := path + ".old"
	if err := m.Write(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir, Options{Threads: 1}); err == nil || !strings.Contains(err.Error(), "takes float16 inputs") ||
		!strings.Contains(err.Error(), "reword instrument") {
		t.Fatalf("earlier fp16 instrumentation: %v", err)
	}
	if e, err = Load(dir, Options{Instrument: true, Threads: 1}); err != nil {
		t.Fatal(err)
	}
	e.Close()
	if desc, err = graph.ReadDescription(path); err != nil || desc.SampleType != "float32" || len(desc.Float16IO) == 0 {
		t.Errorf("re-instrumented: %+v, %v", desc, err)
	}
}
