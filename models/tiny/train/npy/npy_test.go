package npy

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

func TestUint8RoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a.npy")
	data := []byte{1, 2, 3, 4, 5, 6}
	if err := Write(path, "|u1", []int{2, 3}, data); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if (len(b)-len(data))%64 != 0 {
		t.Errorf("header is not padded to 64 bytes: file of %d bytes", len(b))
	}
	shape, got, err := ReadUint8(path)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(shape, []int{2, 3}) || !bytes.Equal(got, data) {
		t.Errorf("read back shape %v data %v", shape, got)
	}
}

func TestReadUint8RefusesOtherArrays(t *testing.T) {
	dir := t.TempDir()
	ints := filepath.Join(dir, "i.npy")
	if err := WriteInt32(ints, []int{2}, []int32{1, 2}); err != nil {
		t.Fatal(err)
	}
	short := filepath.Join(dir, "s.npy")
	if err := Write(short, "|u1", []int{4}, []byte{1}); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(dir, "j.npy")
	os.WriteFile(junk, []byte("not numpy"), 0o644)
	for _, p := range []string{ints, short, junk, filepath.Join(dir, "missing.npy")} {
		if _, _, err := ReadUint8(p); err == nil {
			t.Errorf("%s: read without error", filepath.Base(p))
		}
	}
}

// NumPy itself must read what Write writes, where a Python with NumPy is at hand.
func TestNumPyReadsIt(t *testing.T) {
	py := ""
	for _, c := range []string{"python3", "/usr/bin/python3"} {
		if p, err := exec.LookPath(c); err == nil && exec.Command(p, "-c", "import numpy").Run() == nil {
			py = p
			break
		}
	}
	if py == "" {
		t.Skip("no python3 with numpy")
	}
	path := filepath.Join(t.TempDir(), "i.npy")
	if err := WriteInt32(path, []int{2, 2}, []int32{1, -2, 3, 70000}); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, "-c", "import numpy,sys; a=numpy.load(sys.argv[1]); print(a.dtype, a.shape, a.tolist())", path).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got := string(bytes.TrimSpace(out)); got != "int32 (2, 2) [[1, -2], [3, 70000]]" {
		t.Errorf("numpy read %s", got)
	}
}
