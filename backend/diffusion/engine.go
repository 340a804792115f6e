// Package diffusion is Reword's generation and Prompt-to-Prompt editing
// engine: it loads a model folder once (text encoder, the UNet instrumented
// for attention control, VAE encoder and decoder) and runs jobs on it.
//
// A job runs in stages, each in its own file:
//
//	run.go       Edit and Generate: a spec becomes a job and its origin
//	sampling.go  the run: source row, text states, start latents, the
//	             denoising loop (classifier-free guidance, scheduler step)
//	unet.go      the UNet binding: its inputs, outputs and timestep type,
//	             the one place a new model family touches
//	control.go   the attention controls of each step (shared/align)
//	blend.go     local blend
//	previews.go  progressive previews (package preview), never blocking
//	heatmaps.go  attention maps summed over the steps, and heat maps
//	text.go      the text encoders (one, or SDXL's two) and the
//	             conditioning they give the UNet
//	codec.go     the VAE decoder
//	invert.go    photos: VAE encoding, DDIM inversion, and the inversion
//	             methods as strategies for the run's origin
//	cache.go     the source cache of trajectories
//
// The scheduler (package scheduler) is configured once per run and steps
// the latents, as in diffusers.
//
// One Engine serves one model; it runs one job at a time (calls from
// several goroutines queue on a mutex), which is how a cluster worker
// uses it. Results are bit-identical for the same spec on the same machine.
package diffusion

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"reword/backend/diffusion/preview"
	"reword/backend/graph"
	"reword/backend/model"
	"reword/backend/ort"
	"reword/shared/clip"
	"reword/shared/edit"
)

// Options configure Load.
type Options struct {
	// Threads is ONNX Runtime's intra-op thread count; 0 = one per core.
	Threads int
	// Provider selects the execution provider ("" = CPU).
	Provider ort.Provider
	// CacheBytes bounds the source cache (stored source trajectories);
	// 0 means DefaultCacheBytes, negative disables the cache.
	CacheBytes int64
	// Instrument lets Load write unet/model.p2p.onnx into the model folder
	// when it is missing (see backend/graph). Without it a missing
	// instrumented UNet is an error that says how to make it.
	Instrument bool
}

// MaxHeatMapPositions caps the grid of the heat maps a run returns with
// RunOptions.HeatMaps: they come from the finest cross-attention resolution
// with at most this many cells, 32×32. That is the finest on every model up
// to a 32×32 latent (16×16 on the tiny model); SD 1.x at 512 px has 64×64
// layers, whose maps would be 4 KiB per token and row on the wire: a result
// of five rows of long prompts would then pass 2 MB, over NATS's default
// 1 MB message limit that a cluster's results travel through. At 32×32 it
// stays near 0.5 MB. RunOptions.AllResolutions has no cap.
const MaxHeatMapPositions = 32 * 32

// DefaultCacheBytes is the source cache's default bound: 512 trajectories of
// the tiny model, or 80 of a 512 px SD model at 50 steps.
const DefaultCacheBytes = 256 << 20

// Engine runs generation and editing jobs on one model.
type Engine struct {
	manifest *model.Manifest
	tok      *clip.Tokenizer
	project  preview.Projector

	texts         []*textEncoder // one, or SDXL's two (text.go)
	unet, decoder *ort.Session
	hidden        int // text states' width (the encoders' widths added)
	pooled        int // the pooled embedding's width (SDXL's text_embeds); 0: none
	unetFacts         // what the UNet's inputs and outputs are (unet.go)

	encoder *ort.Session // the VAE encoder, for photos (invert.go)

	// sourceNorms is the VAE decoder whose GroupNorms take the first
	// image's statistics (codec.go), opened on first use.
	sourceNorms struct {
		sync.Mutex
		decoder *ort.Session
	}
	sessionOptions ort.Options

	cache *sourceCache
	mu    sync.Mutex // one job at a time
}

// Load opens the model folder dir: its manifest, and one ONNX Runtime
// session each for the text encoders, the instrumented UNet, the VAE
// decoder and the VAE encoder (for photos), created once and reused by
// every job.
func Load(dir string, opts Options) (*Engine, error) {
	m, err := model.Load(dir)
	if err != nil {
		return nil, err
	}
	tok, err := clip.Default()
	if err != nil {
		return nil, err
	}
	proj, err := preview.NewProjector(m.Preview.LatentRGBMatrix, m.Preview.LatentRGBBias, m.Latent.Channels)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", dir, err)
	}
	e := &Engine{manifest: m, tok: tok, project: proj}
	ok := false
	defer func() {
		if !ok {
			e.Close()
		}
	}()
	so := ort.Options{Threads: opts.Threads, Provider: opts.Provider}
	e.sessionOptions = so
	unetPath, desc, err := instrumentedUNet(m, opts.Instrument)
	if err != nil {
		return nil, err
	}
	if err := e.openTextEncoders(so); err != nil {
		return nil, err
	}
	// The instrumented UNet's inputs and outputs are float32 whatever the
	// export's precision: Instrument casts an fp16 export's at the boundary.
	if e.unet, err = ort.NewSession(unetPath, so); err != nil {
		return nil, err
	}
	if e.decoder, err = openSession(m, m.VAEDecoder.File, "VAE decoder", so, graph.Float32IORewrite); err != nil {
		return nil, err
	}
	if e.encoder, err = openEncoder(m, so); err != nil {
		return nil, err
	}
	if err := e.checkSessions(desc); err != nil {
		return nil, fmt.Errorf("model %s: %w", dir, err)
	}
	if d := m.Defaults.DecodeNorm; d != "" && d != edit.DecodeNormOwn {
		// The edits would need it: a decoder it cannot serve is the
		// manifest's problem, said at load rather than by every run.
		if _, err := e.sourceNormDecoder(); err != nil {
			return nil, fmt.Errorf("model %s: defaults.decode_norm %q needs the VAE decoder with the source's statistics, "+
				"which cannot be made from this one (%w): set it to %q or leave it out", dir, d, err, edit.DecodeNormOwn)
		}
	}
	limit := opts.CacheBytes
	if limit == 0 {
		limit = DefaultCacheBytes
	}
	e.cache = newSourceCache(limit)
	ok = true
	return e, nil
}

// openSession opens the model file of the manifest m after the rewrites it
// needs (in memory; none: the file as it is). Every model gets
// graph.Float32IORewrite, so that the engine feeds and reads float32
// tensors whether the export is fp32 or fp16: one code path, with the
// conversion inside the graph. Weights in external files stay there:
// ONNX Runtime reads them from the model's folder for the rewritten graph.
func openSession(m *model.Manifest, file, what string, so ort.Options, rewrites ...graph.Rewrite) (*ort.Session, error) {
	path := m.Path(file)
	r, err := graph.RewriteKeepingWeights(path, what, rewrites...)
	switch {
	case err != nil:
		return nil, fmt.Errorf("model %s: %w", m.Dir, err)
	case r == nil:
		return ort.NewSession(path, so)
	case r.Dir == "":
		return ort.NewSessionFromBytes(path, r.Model, so)
	}
	return ort.NewSessionFromExternalModel(path, ort.ExternalModel{Model: r.Model, Dir: r.Dir, Probe: r.Probe, Weights: r.Weights}, so)
}

// instrumentedUNet returns the path of unet/model.p2p.onnx and its
// description, writing it first when allowed and it is missing, older than
// the UNet it derives from, of another layout than this build reads (an
// earlier version's single maps output, or layout 2's fixed self-replace
// layers).
func instrumentedUNet(m *model.Manifest, instrument bool) (string, *graph.Description, error) {
	orig := m.Path(m.UNet.File)
	path := strings.TrimSuffix(orig, graph.OriginalFile) + graph.InstrumentedFile
	if path == orig {
		return "", nil, fmt.Errorf("model %s: the UNet file %s is not named %s, so the instrumented copy has no place", m.Dir, m.UNet.File, graph.OriginalFile)
	}
	ist, err := os.Stat(path)
	ost, oerr := os.Stat(orig)
	if oerr != nil {
		return "", nil, fmt.Errorf("model %s: %w", m.Dir, oerr)
	}
	// The manifest's self-replace limit becomes the description's default
	// (what `reword instrument` shows); runs choose their layers anyway
	// (selflayers.go), so a file written with another default still serves.
	// The manifest's latent size is the reference size: exports whose
	// sample height and width are dynamic (every optimum export) cannot
	// be instrumented without one.
	opts := graph.Options{
		SelfReplaceMaxQueries: m.Defaults.SelfReplaceMaxTokens,
		Latent:                graph.Size{Height: m.Latent.Height, Width: m.Latent.Width},
	}
	command := fmt.Sprintf("reword instrument %s", m.Dir)
	if n := opts.SelfReplaceMaxQueries; n > 0 {
		command = fmt.Sprintf("reword instrument -self-max-queries %d %s", n, m.Dir)
	}
	problem := ""
	var desc *graph.Description
	switch {
	case err != nil:
		problem = fmt.Sprintf("model %s has no instrumented UNet (%s): run `%s` first", m.Dir, path, command)
	case ist.ModTime().Before(ost.ModTime()):
		problem = fmt.Sprintf("model %s: %s is older than %s: run `%s` again", m.Dir, path, orig, command)
	default:
		desc, err = graph.ReadDescription(path)
		if err != nil {
			return "", nil, err
		}
		if err := desc.CheckLayout(); err != nil {
			problem = fmt.Sprintf("model %s: %s: %v: run `%s` again", m.Dir, path, err, command)
		} else if desc.SampleType == "float16" || desc.HiddenStatesType == "float16" {
			problem = fmt.Sprintf("model %s: %s takes float16 inputs: an earlier Reword instrumented this fp16 export without "+
				"casting its inputs and outputs to float32: run `%s` again", m.Dir, path, command)
		}
	}
	if problem == "" {
		return path, desc, nil
	}
	if !instrument {
		return "", nil, errors.New(problem)
	}
	desc, written, err := graph.InstrumentDir(m.Dir, opts)
	if err != nil {
		return "", nil, fmt.Errorf("instrumenting the UNet of %s: %w", m.Dir, err)
	} else if written != path {
		return "", nil, fmt.Errorf("instrumenting the UNet of %s wrote %s, expected %s", m.Dir, written, path)
	}
	return path, desc, nil
}

// checkSessions verifies the models' inputs and outputs against the manifest
// and the instrumentation contract, and reads what varies between exports.
func (e *Engine) checkSessions(desc *graph.Description) error {
	m := e.manifest
	if err := e.checkTextEncoders(); err != nil {
		return err
	}
	if err := e.checkUNet(desc); err != nil {
		return err
	}
	if _, ok := e.decoder.Input(m.VAEDecoder.Input); !ok {
		return fmt.Errorf("VAE decoder: no input %q (the model has %v)", m.VAEDecoder.Input, e.decoder.InputInfo())
	}
	if _, ok := e.decoder.Output(m.VAEDecoder.Output); !ok {
		return fmt.Errorf("VAE decoder: no output %q (the model has %v)", m.VAEDecoder.Output, e.decoder.OutputInfo())
	}
	return e.checkEncoder()
}

// HeatMapSize is the grid of the heat maps RunOptions.HeatMaps returns.
func (e *Engine) HeatMapSize() (width, height int) {
	o := e.maps[e.heatOut]
	return o.w, o.h
}

// LocalBlendSize is the grid of the attention maps local blending reads.
func (e *Engine) LocalBlendSize() (width, height int) {
	o := e.maps[e.blendOut]
	return o.w, o.h
}

// Close releases the sessions. The engine must not be used afterwards.
func (e *Engine) Close() error {
	var errs []error
	sessions := []*ort.Session{e.unet, e.decoder, e.encoder, e.sourceNorms.decoder}
	for _, t := range e.texts {
		sessions = append(sessions, t.s)
	}
	for _, s := range sessions {
		if s != nil {
			errs = append(errs, s.Close())
		}
	}
	return errors.Join(errs...)
}

// Manifest returns the loaded model's manifest.
func (e *Engine) Manifest() *model.Manifest { return e.manifest }

// Tokenizer returns the CLIP tokenizer the engine encodes prompts with.
func (e *Engine) Tokenizer() *clip.Tokenizer { return e.tok }

// Defaults describes the model for edit specs: its id, size, schedulers,
// default steps and guidance, and the Prompt-to-Prompt windows, as its
// family and manifest set them (model.Manifest.SpecDefaults), with the
// self-attention layers a run can choose (describeSelfLayers). A UNet
// without float32 GroupNorms (an fp16 export of a model whose manifest
// sets a norm default) runs without the norm default, and says so here,
// since it cannot take the norm control.
func (e *Engine) Defaults() edit.Defaults {
	d := e.manifest.SpecDefaults()
	e.describeSelfLayers(&d)
	if e.desc != nil && !e.TakesNorm() {
		d.Norm = edit.Window{}
	}
	return d
}

// TakesNorm reports whether the UNet can take the norm control (it has
// float32 GroupNorms); a spec with a norm window is refused otherwise.
func (e *Engine) TakesNorm() bool { return e.desc != nil && e.desc.NormLayers > 0 }

// CacheStats reports the source cache's entries and bytes.
func (e *Engine) CacheStats() (entries int, bytes int64) { return e.cache.stats() }
