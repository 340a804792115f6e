package diffusion

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"time"

	"reword/backend/graph"
	"reword/backend/model"
	"reword/backend/ort"
	"reword/backend/photo"
	"reword/backend/scheduler"
	"reword/shared/edit"
)

// Photo is an uploaded photo to edit, given with a spec whose Image is its
// content hash (RunOptions.Photo).
type Photo struct {
	// Data is the file as uploaded (PNG, JPEG, WebP or GIF). Its SHA-256
	// must be the spec's Image, so that the inversion cache, which is
	// keyed by that hash, can never serve another photo's inversion.
	Data []byte
	// Fit is how a photo of another aspect ratio becomes the model's size
	// (the zero value is photo.Crop, the reference's centre crop).
	Fit photo.Fit
	// Limits bound the file and its decoded size; the zero value means
	// photo.DefaultLimits. The server passes its upload limits.
	Limits photo.Limits
}

// Inversion (docs/algorithm.md, section 8): a photo is encoded with the VAE (posterior
// mean × the model's scaling factor) to z*[0], then DDIM-inverted with the
// source caption at guidance 1 — the conditional UNet output only — to
// z*[1..T]; z*[T] is the x_T every row of the edit starts from. The whole
// trajectory is kept (Direct Inversion replays it) and cached by photo,
// fit, caption, model and steps in the engine's source cache, so further
// edits of the same photo run no inversion. How the edit then treats the
// source row is the method's strategy (inversionMethods).
//
// Null-text inversion (Mokady et al. 2023) is not offered: it optimises the
// unconditional embedding per step by gradient descent through the UNet,
// and ONNX Runtime inference computes no gradients (see docs/inversion.md).

// inversionMethods are the strategies of editing a photo: from the photo's
// inversion trajectory inv (inv.at(0) is x_T), each sets where the run
// starts and how it treats the source row.
//
//   - direct (Direct Inversion, Ju et al. 2024): the source row is set to
//     the stored z* before every step, so it reconstructs the photo's VAE
//     round trip exactly and the targets read the attention of the true
//     source trajectory: the trajectory is replayed.
//   - npi (negative-prompt inversion, Miyake et al. 2023): the source
//     caption is the unconditional prompt of every row; the source row's
//     guided output is then its conditional output, the reverse of the
//     inversion, up to DDIM inversion's linearisation error.
//   - ddim: plain DDIM inversion, then ordinary guided sampling; the
//     source row drifts from the photo (the "ddim+p2p" baseline).
var inversionMethods = map[string]func(inv *sourceEntry) origin{
	edit.InversionDirect: func(inv *sourceEntry) origin { return origin{noise: inv.at(0), replay: inv, photo: true} },
	edit.InversionNPI:    func(inv *sourceEntry) origin { return origin{noise: inv.at(0), uncondSource: true, photo: true} },
	edit.InversionDDIM:   func(inv *sourceEntry) origin { return origin{noise: inv.at(0), photo: true} },
}

// editPhoto runs the edit job j on the photo of spec r: inversion (or the
// cached one), then the edit loop from the origin the method sets up.
func (e *Engine) editPhoto(ctx context.Context, r edit.Resolved, j *job, onPreview func(Preview)) (*Result, error) {
	p := j.opts.Photo
	method, known := inversionMethods[r.Inversion]
	switch {
	case p == nil:
		return nil, fmt.Errorf("the spec edits photo %s but the run was given no photo bytes (RunOptions.Photo)", r.Image)
	case !known:
		return nil, fmt.Errorf("unknown inversion method %q", r.Inversion)
	case r.Scheduler != scheduler.DDIMName:
		return nil, fmt.Errorf("editing a photo needs the %s scheduler, which inversion runs backwards; %q cannot be used", scheduler.DDIMName, r.Scheduler)
	case r.Inversion == edit.InversionNPI && r.Negative != "":
		return nil, fmt.Errorf("negative-prompt inversion uses the source prompt as the negative prompt; it cannot be combined with the negative prompt %q", r.Negative)
	}
	if sum := sha256.Sum256(p.Data); hex.EncodeToString(sum[:]) != r.Image {
		return nil, fmt.Errorf("the photo bytes given (SHA-256 %x) are not the spec's image %s", sum, r.Image)
	}
	start := time.Now()
	inv, cached, rows, err := e.inversion(ctx, r.Image, p, r.Source, r.Steps, !j.opts.NoSourceCache)
	if err != nil {
		return nil, err
	}
	took := time.Since(start)
	j.origin = method(inv)
	res, err := e.run(ctx, j, onPreview)
	if err != nil {
		return nil, err
	}
	res.SourceCached = cached
	res.UNetRows += rows
	if !cached {
		res.Timings.Inversion = took
	}
	res.Timings.Total += took
	return res, nil
}

// inversion returns the DDIM inversion trajectory of the photo as a source
// entry (at(i) is the latent sampling step i starts from, at(steps) the
// encoded photo), whether it came from the cache, and the UNet rows it cost.
func (e *Engine) inversion(ctx context.Context, hash string, p *Photo, caption string, steps int, useCache bool) (*sourceEntry, bool, int, error) {
	key := sourceKey{model: e.manifest.ID(), prompt: caption, photo: hash + "/" + p.Fit.String(),
		scheduler: scheduler.DDIMName, steps: steps, guidanceBits: math.Float64bits(1)}
	useCache = useCache && e.cache.limit > 0
	if useCache {
		if inv := e.cache.get(key); inv != nil {
			return inv, true, 0, nil
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	z0, err := e.encodePhoto(ctx, p)
	if err != nil {
		return nil, false, 0, err
	}
	inv, err := e.invert(ctx, z0, caption, steps)
	if err != nil {
		return nil, false, 0, err
	}
	if useCache {
		e.cache.put(key, inv)
	}
	return inv, false, steps, nil
}

// invert runs DDIM inversion from the clean latent z0 (UNet scale) with the
// caption's embedding at guidance 1 (docs/algorithm.md, sections 8 and 9):
// one single-row UNet
// call per step, lowest noise level first.
func (e *Engine) invert(ctx context.Context, z0 []float32, caption string, steps int) (*sourceEntry, error) {
	m := e.manifest
	C, H, W := m.Latent.Channels, m.Latent.Height, m.Latent.Width
	rowSize := C * H * W
	ddim, err := scheduler.NewDDIM(e.manifest.Schedule, steps)
	if err != nil {
		return nil, err
	}
	ts := ddim.Timesteps()
	text, err := e.encode(ctx, []string{caption})
	if err != nil {
		return nil, err
	}
	inv := &sourceEntry{latents: make([]float32, (len(ts)+1)*rowSize), rowSize: rowSize}
	x := inv.at(len(ts))
	copy(x, z0)

	// One conditional row and no targets: the source alone.
	u, err := e.bindUNet(1, 1, 0, text, nil)
	if err != nil {
		return nil, err
	}
	defer u.close()
	for i := len(ts) - 1; i >= 0; i-- {
		n := len(ts) - i
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("inversion cancelled before step %d of %d: %w", n, len(ts), err)
		}
		copy(u.sample, x)
		if err := u.run(ctx, ts[i]); err != nil {
			return nil, fmt.Errorf("UNet at inversion step %d of %d: %w", n, len(ts), err)
		}
		next := inv.at(i)
		copy(next, x)
		if err := ddim.Invert(i, u.out, next); err != nil {
			return nil, fmt.Errorf("inversion step %d of %d: %w", n, len(ts), err)
		}
		x = next
	}
	return inv, nil
}

// encodePhoto decodes, fits and VAE-encodes a photo: the posterior mean
// times the scaling factor (docs/algorithm.md, section 8). The mean, not a
// sample: an encoder that outputs mean and log-variance gives it exactly,
// and one that samples was rewritten to output the mean (openEncoder).
func (e *Engine) encodePhoto(ctx context.Context, p *Photo) ([]float32, error) {
	rgb, err := e.preparePhoto(p)
	if err != nil {
		return nil, err
	}
	return e.encodeRGB(ctx, rgb)
}

// preparePhoto decodes and fits p to the model's image size.
func (e *Engine) preparePhoto(p *Photo) ([]byte, error) {
	lim := p.Limits
	if lim == (photo.Limits{}) {
		lim = photo.DefaultLimits
	}
	m := e.manifest
	img, _, err := photo.Prepare(p.Data, m.Image.Width, m.Image.Height, p.Fit, lim)
	if err != nil {
		return nil, err
	}
	rgb := make([]byte, 0, 3*m.Image.Width*m.Image.Height)
	for i := 0; i < len(img.Pix); i += 4 {
		rgb = append(rgb, img.Pix[i:i+3]...)
	}
	return rgb, nil
}

// encodeRGB runs the VAE encoder on one image (3 bytes per pixel) and
// returns its latent in UNet scale.
func (e *Engine) encodeRGB(ctx context.Context, rgb []byte) ([]float32, error) {
	m := e.manifest
	w, h, plane := m.Image.Width, m.Image.Height, m.Image.Width*m.Image.Height
	if len(rgb) != 3*plane {
		return nil, fmt.Errorf("image has %d bytes; the model's %d×%d RGB image has %d", len(rgb), w, h, 3*plane)
	}
	pix := make([]float32, 3*plane)
	for p := 0; p < plane; p++ {
		for c := 0; c < 3; c++ {
			pix[c*plane+p] = float32(rgb[3*p+c])/127.5 - 1
		}
	}
	in, err := ort.NewTensor([]int64{1, 3, int64(h), int64(w)}, pix)
	if err != nil {
		return nil, err
	}
	defer in.Destroy()
	outs, err := e.encoder.RunContext(ctx, map[string]ort.Value{m.VAEEncoder.Input: in})
	if err != nil {
		return nil, fmt.Errorf("VAE encoder: %w", err)
	}
	defer outs.Destroy()
	lat, shape, err := outs.Float32(m.VAEEncoder.Output)
	if err != nil {
		return nil, fmt.Errorf("VAE encoder: %w", err)
	}
	rowSize := m.Latent.Channels * m.Latent.Height * m.Latent.Width
	want := rowSize
	if m.VAEEncoder.OutputKind == "mean_logvar" {
		want = 2 * rowSize // mean then log-variance; channels first, so the mean is the first half
	}
	if len(lat) != want {
		return nil, fmt.Errorf("VAE encoder returned shape %v; want %d values (%s, %d latent channels of %d×%d)",
			shape, want, m.VAEEncoder.OutputKind, m.Latent.Channels, m.Latent.Height, m.Latent.Width)
	}
	z := make([]float32, rowSize)
	s := float32(m.Latent.ScalingFactor)
	for i := range z {
		z[i] = lat[i] * s
	}
	return z, nil
}

// RoundTrip returns the photo as the model's VAE reproduces it: fitted,
// encoded and decoded with no diffusion step. It is the best any inversion
// can reconstruct, and what Direct Inversion's source row decodes to.
func (e *Engine) RoundTrip(ctx context.Context, p Photo) (Image, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	z, err := e.encodePhoto(ctx, &p)
	if err != nil {
		return Image{}, err
	}
	images, err := e.decode(ctx, z, 1)
	if err != nil {
		return Image{}, err
	}
	m := e.manifest
	return Image{Row: 0, Width: m.Image.Width, Height: m.Image.Height, RGB: images[0]}, nil
}

// openEncoder opens the VAE encoder so that it returns the posterior mean,
// which inversion needs: the same photo then inverts to the same latents
// bit for bit, run after run. A derived manifest first learns which output
// the export has (model.Manifest.UseEncoderOutputs); an encoder whose
// output is a random draw mean + std·ε is rewritten in memory to return
// the mean, and one that is random in another form is refused with the fix.
// Like every model, an fp16 encoder gets float32 inputs and outputs; either
// rewrite leaves weights in external files where they are.
func openEncoder(m *model.Manifest, so ort.Options) (*ort.Session, error) {
	if m.Derived {
		names, err := graph.OutputNames(m.Path(m.VAEEncoder.File))
		if err != nil {
			return nil, fmt.Errorf("model %s: VAE encoder: %w", m.Dir, err)
		}
		if err := m.UseEncoderOutputs(names); err != nil {
			return nil, err
		}
	}
	var rewrites []graph.Rewrite
	if m.VAEEncoder.OutputKind == "sample" {
		// First: PosteriorMean finds the sum that Float32IO's Cast
		// would hide behind the output.
		rewrites = append(rewrites, graph.PosteriorMeanRewrite(m.VAEEncoder.Output))
	}
	rewrites = append(rewrites, graph.Float32IORewrite)
	return openSession(m, m.VAEEncoder.File, "VAE encoder", so, rewrites...)
}

// checkEncoder verifies the VAE encoder's input and output against the
// manifest.
func (e *Engine) checkEncoder() error {
	m := e.manifest
	if in, ok := e.encoder.Input(m.VAEEncoder.Input); !ok || in.DType != ort.Float32 {
		return fmt.Errorf("VAE encoder: want a float32 input %q, the model has %v", m.VAEEncoder.Input, e.encoder.InputInfo())
	}
	if out, ok := e.encoder.Output(m.VAEEncoder.Output); !ok || out.DType != ort.Float32 {
		return fmt.Errorf("VAE encoder: want a float32 output %q, the model has %v", m.VAEEncoder.Output, e.encoder.OutputInfo())
	}
	return nil
}

// Splice decodes base's latent with the latent cells that are set in cells
// (one per latent position, row by row) taken from inset's: a perfect
// local blend of inset into base on those cells, through this model's VAE.
// What the decoder then does to the cells left as base's says how much of a
// background a latent-space local blend can keep (bench edit -drawn).
func (e *Engine) Splice(ctx context.Context, base, inset Photo, cells []bool) (Image, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := e.manifest
	plane := m.Latent.Width * m.Latent.Height
	if len(cells) != plane {
		return Image{}, fmt.Errorf("splice mask has %d cells; the model's %d×%d latent has %d", len(cells), m.Latent.Height, m.Latent.Width, plane)
	}
	z, err := e.encodePhoto(ctx, &base)
	if err != nil {
		return Image{}, err
	}
	in, err := e.encodePhoto(ctx, &inset)
	if err != nil {
		return Image{}, err
	}
	for i := range z {
		if cells[i%plane] {
			z[i] = in[i]
		}
	}
	images, err := e.decode(ctx, z, 1)
	if err != nil {
		return Image{}, err
	}
	return Image{Row: 0, Width: m.Image.Width, Height: m.Image.Height, RGB: images[0]}, nil
}
