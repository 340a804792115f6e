// Package model describes a model folder on disk: which files a Reword model
// needs and whether they are present (Check, which the server reports before
// any generation is attempted), and its manifest (Load): sizes, latent scale,
// noise schedule, defaults and preview factors. The noise schedule and the
// defaults belong to the model's family (Family), overridden by whatever the
// manifest states; SpecDefaults turns them into the defaults edit specs
// resolve against. The engine loads the ONNX files the manifest names.
package model

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Layout lists the files of a diffusers-layout ONNX folder that Reword
// needs, relative to the folder. The manifest (model.json) is optional for a
// user's own Stable Diffusion export and required for the tiny model.
var Layout = []string{
	"text_encoder/model.onnx",
	"unet/model.onnx",
	"vae_decoder/model.onnx",
	"vae_encoder/model.onnx",
}

// ManifestFile is the name of the optional manifest inside a model folder.
const ManifestFile = "model.json"

// Status is what Check found in a folder.
type Status struct {
	Dir string
	// ID is the folder's base name, used until a manifest names the model.
	ID string
	// Missing lists the required files that are absent, in Layout order.
	Missing []string
}

// Ready reports whether every required file is present.
func (s Status) Ready() bool { return len(s.Missing) == 0 }

// Problem explains in one sentence why the folder cannot be loaded, or "".
func (s Status) Problem() string {
	if s.Ready() {
		return ""
	}
	return fmt.Sprintf("model folder %s is missing %s", s.Dir, strings.Join(s.Missing, ", "))
}

// Check inspects dir. It fails only when dir itself is unusable; missing
// model files are reported in the Status.
func Check(dir string) (Status, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return Status{}, fmt.Errorf("model folder: %w", err)
	}
	if !info.IsDir() {
		return Status{}, fmt.Errorf("model folder %s is a file, not a folder", dir)
	}
	st := Status{Dir: dir, ID: filepath.Base(filepath.Clean(dir))}
	for _, rel := range Layout {
		_, err := os.Stat(filepath.Join(dir, filepath.FromSlash(rel)))
		switch {
		case err == nil:
		case errors.Is(err, fs.ErrNotExist):
			st.Missing = append(st.Missing, rel)
		default:
			return Status{}, fmt.Errorf("model folder: %w", err)
		}
	}
	return st, nil
}
