package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"image"
	"image/png"
	"io"
	"math/rand/v2"
	"strings"
	"text/tabwriter"
	"time"

	"reword/backend/diffusion"
	"reword/models/tiny/scene"
	"reword/shared/edit"
)

func init() {
	registerBench(benchmark{name: "invert", summary: "reconstruction and colour-swap edits of drawn photos per inversion method", run: runBenchInvert})
}

// invertCase is one drawn photo and the colour swap asked of it.
type invertCase struct {
	edit  benchEdit
	png   []byte
	photo diffusion.Image // the drawn pixels, the reference for every metric
}

// invertSet draws n photos with the scene drawer — pictures of the model's
// world that the model never produced — each with a caption naming its
// colour, shape and position and a target that swaps the colour.
// Deterministic in n (a smaller set is a prefix of a larger one).
func invertSet(n int) ([]invertCase, error) {
	var out []invertCase
	for i := 0; i < n; i++ {
		rng := rand.New(rand.NewPCG(2027, uint64(i)))
		c := scene.Colours[rng.IntN(len(scene.Colours))]
		s := scene.Shapes[rng.IntN(len(scene.Shapes))]
		p := scene.Positions[rng.IntN(len(scene.Positions))]
		c2 := c
		for c2 == c {
			c2 = scene.Colours[rng.IntN(len(scene.Colours))]
		}
		// The caption leaves the background and size unnamed (as most
		// training captions do); both are drawn, the background among
		// those both colours stand out on.
		size := scene.Sizes[rng.IntN(len(scene.Sizes))]
		var bg scene.Background
		for {
			bg = scene.Backgrounds[rng.IntN(len(scene.Backgrounds))]
			if bg.Allows(c) && bg.Allows(c2) {
				break
			}
		}
		o := scene.Object{Shape: s, Colour: c, Size: size, Position: p}
		be := colourSwap(setPosition, o, c2, bg)
		src := setCaption(setPosition, o, bg)
		sc, err := scene.SceneFor(rng, src)
		if err != nil {
			return nil, fmt.Errorf("drawing %q: %w", src.Text, err)
		}
		img := sc.Render()
		var b bytes.Buffer
		if err := png.Encode(&b, img); err != nil {
			return nil, err
		}
		out = append(out, invertCase{edit: be, png: b.Bytes(), photo: rgbImage(img)})
	}
	return out, nil
}

// rgbImage packs an RGBA image's colour bytes as a diffusion.Image.
func rgbImage(img *image.RGBA) diffusion.Image {
	b := img.Bounds()
	rgb := make([]byte, 0, 3*b.Dx()*b.Dy())
	for i := 0; i < len(img.Pix); i += 4 {
		rgb = append(rgb, img.Pix[i:i+3]...)
	}
	return diffusion.Image{Width: b.Dx(), Height: b.Dy(), RGB: rgb}
}

// imagePSNR is the PSNR between two images of equal size (capped as psnr).
func imagePSNR(a, b diffusion.Image) float64 {
	var sum float64
	for i := range a.RGB {
		d := float64(a.RGB[i]) - float64(b.RGB[i])
		sum += d * d
	}
	return psnr(sum, len(a.RGB))
}

// invertTally accumulates one method's reconstruction and edit scores.
type invertTally struct {
	edits                tally
	vsRoundTrip, vsPhoto float64
	exact                int // reconstructions identical to the round trip
	editTime             time.Duration
}

func runBenchInvert(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench invert", "", stderr)
	ef := addEngineFlags(fs)
	n := fs.Int("scenes", 60, "drawn photos to invert and edit (the README table uses 60)")
	steps := fs.Int("steps", 0, "diffusion steps for inversion and edit (0 = the model's default)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("unexpected arguments %q", fs.Args())
	}
	if *n < 1 || *steps < 0 {
		return usageError("--scenes must be ≥ 1 and --steps ≥ 0")
	}
	set, err := invertSet(*n)
	if err != nil {
		return err
	}
	e, err := ef.load()
	if err != nil {
		return err
	}
	defer e.Close()
	if err := needSceneImages(e); err != nil {
		return err
	}
	methods := edit.Inversions
	tallies := map[string]*invertTally{}
	for _, m := range methods {
		tallies[m] = &invertTally{}
	}
	var roundTrip float64 // round trip vs photo
	var inversion time.Duration
	start := time.Now()
	for i, c := range set {
		sum := sha256.Sum256(c.png)
		ph := diffusion.Photo{Data: c.png}
		rt, err := e.RoundTrip(ctx, ph)
		if err != nil {
			return fmt.Errorf("photo %d (%q): %w", i, c.edit.source, err)
		}
		roundTrip += imagePSNR(rt, c.photo)
		var seed uint64 // unused: photo edits start from the inversion
		spec := edit.Spec{Source: c.edit.source, Targets: []string{c.edit.target}, Seed: &seed, Image: hex.EncodeToString(sum[:])}
		if *steps > 0 {
			spec.Steps = steps
		}
		for _, m := range methods {
			spec.Inversion = m
			res, err := e.Edit(ctx, spec, diffusion.RunOptions{Photo: &ph}, nil)
			if err != nil {
				return fmt.Errorf("photo %d, %s: %q → %q: %w", i, m, c.edit.source, c.edit.target, err)
			}
			t := tallies[m]
			rec := res.Images[0]
			p := imagePSNR(rec, rt)
			if bytes.Equal(rec.RGB, rt.RGB) {
				t.exact++
			}
			t.vsRoundTrip += p
			t.vsPhoto += imagePSNR(rec, c.photo)
			s, err := score(c.edit, c.photo, res.Images[1])
			if err != nil {
				return err
			}
			t.edits.add(s)
			inversion += res.Timings.Inversion
			t.editTime += res.Timings.Total - res.Timings.Inversion
		}
		if (i+1)%10 == 0 {
			fmt.Fprintf(stderr, "%d photos, %v\n", i+1, time.Since(start).Round(time.Second))
		}
	}
	d := e.Defaults()
	st := d.Steps
	if *steps > 0 {
		st = *steps
	}
	N := float64(len(set))
	cross := fmt.Sprintf("cross %.2f", d.Cross.End)
	if d.CrossChanged != nil {
		cross += fmt.Sprintf(" (the swapped word %.2f)", d.CrossChanged.End)
	}
	settings := decodeAndBlendNote(d.DecodeNorm, d.BlendChanged, false) // a colour swap has no reweight
	if !d.BlendChanged {
		settings += ", no local blend"
	}
	fmt.Fprintf(stdout, "Inversion benchmark, model %s: %d drawn photos (scene drawer, never model outputs), colour swap each, %d steps, guidance %.1f, %s, self %.2f, norm %.2f%s; %v\n",
		d.Model, len(set), st, d.Guidance, cross, d.Self.End, d.Norm.End, settings, time.Since(start).Round(time.Second))
	fmt.Fprintf(stdout, "VAE round trip (no diffusion) vs the photo: %.2f dB; inversion (encode + %d UNet rows): %.0f ms per photo, paid once per photo and caption\n",
		roundTrip/N, st, float64(inversion.Milliseconds())/N)
	fmt.Fprintf(stdout, "PSNR is capped at 60 dB (identical images); metrics of the edited image are against the drawn photo.\n\n")
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "| method\t| recon vs round trip dB\t| identical\t| recon vs photo dB\t| edit success\t| mask IoU\t| centroid shift px\t| background PSNR dB\t| edit ms\t|")
	for _, m := range methods {
		t := tallies[m]
		fmt.Fprintf(tw, "| %s\t| %.2f\t| %d/%d\t| %.2f\t| %s\t| %.0f\t|\n", m, t.vsRoundTrip/N, t.exact, len(set), t.vsPhoto/N,
			strings.ReplaceAll(t.edits.row(), "\t", "\t| "), float64(t.editTime.Milliseconds())/N)
	}
	return tw.Flush()
}
