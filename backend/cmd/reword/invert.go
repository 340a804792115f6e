package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"reword/backend/diffusion"
	"reword/backend/photo"
	"reword/shared/edit"
)

func init() {
	register(command{
		name:    "invert",
		summary: "invert a photo and edit it by rewording its caption",
		run:     runInvert,
	})
}

func runInvert(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("invert", "", stderr)
	ef := addEngineFlags(fs)
	image := fs.String("image", "", "the photo to edit: PNG, JPEG, WebP or GIF (required)")
	prompt := fs.String("prompt", "", "a caption of the photo, the source prompt (required)")
	method := fs.String("method", edit.Inversions[0], "inversion method: "+strings.Join(edit.Inversions, ", "))
	fitName := fs.String("fit", photo.Fits[0], "how a photo of another shape becomes the model's size: "+strings.Join(photo.Fits, " or "))
	steps := fs.Int("steps", 0, "diffusion steps, for the inversion and the edit (0 = the model's default)")
	var guidance *float64 // nil: not given, the model's default
	fs.Var(optionalFloat{&guidance}, "guidance", fmt.Sprintf("classifier-free guidance scale of the edit, %v to %v (default: the model's)", edit.MinGuidance, edit.MaxGuidance))
	negative := fs.String("negative", "", "negative prompt of the edit (not with --method npi, which uses the caption)")
	edf := addEditFlags(fs)
	out := fs.String("out", "", "folder to write reconstruction.png, target-1.png, … into, created if needed (required; one holding an earlier run's images is refused)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usageError("unexpected arguments %q", fs.Args())
	case *image == "":
		return usageError("--image is required")
	case *prompt == "":
		return usageError("--prompt is required: describe the photo as the model's prompts would")
	case *out == "":
		return usageError("--out is required")
	}
	fit, err := photo.ParseFit(*fitName)
	if err != nil {
		return usageError("--fit: %v", err)
	}
	if err := checkSteps(*steps); err != nil {
		return err
	}
	if err := checkGuidance(guidance); err != nil {
		return err
	}
	data, err := readPhoto(*image, photo.DefaultLimits.MaxBytes)
	if err != nil {
		return err
	}
	// Decoded here only to find a file that is no photo before the model
	// loads; the engine decodes it again, fitting it to the model's size.
	if _, _, err := photo.Decode(data, photo.DefaultLimits); err != nil {
		return fmt.Errorf("%s: %w", *image, err)
	}
	sum := sha256.Sum256(data)
	// The seed plays no part: every row starts from the photo's inversion.
	var seed uint64
	spec := edit.Spec{Source: *prompt, Negative: *negative, Seed: &seed, Image: hex.EncodeToString(sum[:]), Inversion: *method, Guidance: guidance}
	if *steps != 0 {
		spec.Steps = steps
	}
	if err := edf.apply(&spec); err != nil {
		return err
	}
	if err := checkSpec(spec); err != nil {
		return err
	}
	if err := checkNewFolder(*out); err != nil {
		return err
	}

	e, err := ef.load()
	if err != nil {
		return err
	}
	defer e.Close()
	edf.forModel(e.Defaults(), &spec)
	bar := newProgress(stderr, "invert")
	res, err := e.Edit(ctx, spec, diffusion.RunOptions{Baseline: *edf.baseline, Photo: &diffusion.Photo{Data: data, Fit: fit}}, bar.update)
	bar.done()
	if err != nil {
		return fmt.Errorf("%s: %w", *image, err)
	}
	ran, err := specAsRun(e, spec)
	if err != nil {
		return err
	}
	paths, err := writeEditImages(*out, "reconstruction.png", res, ran)
	if err != nil {
		return err
	}
	if !*ef.json {
		fmt.Fprintf(stdout, "%s inversion: %v\n", ran.Inversion, res.Timings.Inversion.Round(time.Millisecond))
	}
	return report(stdout, *ef.json, ran, res, paths)
}

// readPhoto reads the file at path, refusing one larger than maxBytes
// before reading it.
func readPhoto(path string, maxBytes int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if st.Size() > maxBytes {
		return nil, fmt.Errorf("%s: %w: the file has %d bytes; the limit is %d", path, photo.ErrTooLarge, st.Size(), maxBytes)
	}
	return io.ReadAll(io.LimitReader(f, maxBytes+1))
}
