// Package tinytest gives tests the repository's tiny model: its folder, or
// a private copy of it for tests that write into the model folder (the
// engine writes the instrumented UNet next to the original). It is the one
// place that knows where the model lives and which of its files are
// derived, so no test skips silently when the model is missing: the model is
// committed, and its absence is a failure.
package tinytest

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Dir is the committed tiny model's folder.
func Dir(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("tinytest: cannot locate the source tree")
	}
	dir := filepath.Join(filepath.Dir(file), "..")
	if _, err := os.Stat(filepath.Join(dir, "model.json")); err != nil {
		t.Fatalf("the tiny model is missing from %s (it is committed; `make tiny-model` rebuilds it): %v", dir, err)
	}
	return dir
}

// Copy copies the model's manifest and ONNX files (not the derived
// instrumented UNet) into dst, creating it.
func Copy(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if d.IsDir() {
			// A model folder is flat: model.json and one folder per
			// component; anything deeper (training work files) is not model.
			if strings.Contains(rel, string(filepath.Separator)) {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !modelFile(p) {
			return nil
		}
		return copyFile(p, filepath.Join(dst, rel))
	})
}

// modelFile is true for what a model folder is made of: the manifest, the
// ONNX graphs and their external weights — not the derived p2p graph, and
// not the training sources that share the folder.
func modelFile(p string) bool {
	if strings.HasSuffix(p, ".p2p.onnx") {
		return false
	}
	return strings.HasSuffix(p, ".onnx") || strings.HasSuffix(p, ".data") || filepath.Base(p) == "model.json"
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Private returns a fresh copy of the tiny model in a temporary folder
// removed when the test ends.
func Private(t testing.TB) string {
	t.Helper()
	dst := t.TempDir()
	if err := Copy(Dir(t), dst); err != nil {
		t.Fatalf("copying the tiny model: %v", err)
	}
	return dst
}
