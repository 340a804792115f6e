package graph

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"reword/backend/graph/modelfile"
)

// InstrumentDir instruments unet/model.onnx of a diffusers-layout ONNX model
// folder and writes unet/model.p2p.onnx next to it. External weight files
// stay where they are and are referenced, not copied; embedded weights are
// copied from file to file without being held in memory. It returns the
// description and the path written.
func InstrumentDir(dir string, opts Options) (*Description, string, error) {
	src, err := UNetPath(dir)
	if err != nil {
		return nil, "", err
	}
	return InstrumentFile(src, opts)
}

// InstrumentFile instruments the UNet model file at src and writes
// model.p2p.onnx in the same directory (where its external weight files
// resolve), returning the description and the path written.
func InstrumentFile(src string, opts Options) (*Description, string, error) {
	m, err := modelfile.Read(src)
	if err != nil {
		return nil, "", err
	}
	desc, err := Instrument(m.Proto, opts)
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", src, err)
	}
	dst := filepath.Join(filepath.Dir(src), InstrumentedFile)
	if err := m.Write(dst); err != nil {
		return nil, "", fmt.Errorf("writing %s: %w", dst, err)
	}
	return desc, dst, nil
}

// UNetPath returns the path of unet/model.onnx inside a model folder, or an
// error that says what is missing.
func UNetPath(dir string) (string, error) {
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("model folder %s does not exist", dir)
	case err != nil:
		return "", err
	case !st.IsDir():
		return "", fmt.Errorf("%s is a file; give the model folder that holds %s/%s", dir, UNetDir, OriginalFile)
	}
	path := filepath.Join(dir, UNetDir, OriginalFile)
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%s has no %s/%s: expected a diffusers-layout ONNX export (unet/, text_encoder/, vae_decoder/ …)", dir, UNetDir, OriginalFile)
	} else if err != nil {
		return "", err
	}
	return path, nil
}

// ReadDescription returns the description stored in an instrumented model
// file, reading the graph but none of the weights.
func ReadDescription(path string) (*Description, error) {
	m, err := modelfile.Read(path)
	if err != nil {
		return nil, err
	}
	for _, p := range m.Proto.GetMetadataProps() {
		if p.GetKey() == DescriptionKey {
			d, err := unmarshalDescription(p.GetValue())
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			return d, nil
		}
	}
	return nil, fmt.Errorf("%s is not instrumented for attention control (no %s metadata): run `reword instrument` on its model folder", path, DescriptionKey)
}
