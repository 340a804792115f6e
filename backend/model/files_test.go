package model

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	st, err := Check(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Ready() || len(st.Missing) != len(Layout) || !strings.Contains(st.Problem(), "unet/model.onnx") {
		t.Fatalf("empty folder: %+v %q", st, st.Problem())
	}
	for _, rel := range Layout {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if st, err = Check(dir); err != nil || !st.Ready() || st.Problem() != "" {
		t.Fatalf("full folder: %+v %v", st, err)
	}
	if _, err := Check(filepath.Join(dir, "nope")); err == nil {
		t.Error("no error for a missing folder")
	}
	if _, err := Check(filepath.Join(dir, Layout[0])); err == nil || !strings.Contains(err.Error(), "is a file") {
		t.Errorf("file instead of folder: err = %v", err)
	}
}
