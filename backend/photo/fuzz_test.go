package photo

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// addSeeds adds every file in testdata to the fuzz corpus.
func addSeeds(f *testing.F) {
	entries, err := os.ReadDir("testdata")
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join("testdata", e.Name()))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

// FuzzPrepare feeds arbitrary bytes through the whole decoder path with
// small limits: it must never panic, every failure must wrap one of the
// package's three causes, and a success must have the requested size.
func FuzzPrepare(f *testing.F) {
	addSeeds(f)
	lim := Limits{MaxBytes: 1 << 20, MaxPixels: 1 << 20, MaxDecodeBytes: 16 << 20}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, fit := range []Fit{Crop, Letterbox} {
			img, _, err := Prepare(data, 12, 20, fit, lim)
			if err != nil {
				if !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrUnsupported) && !errors.Is(err, ErrCorrupt) {
					t.Fatalf("error of no known cause: %v", err)
				}
				continue
			}
			if b := img.Bounds(); b.Dx() != 12 || b.Dy() != 20 {
				t.Fatalf("fitted image is %v, want 12×20", b)
			}
		}
	})
}

// FuzzEXIF feeds arbitrary bytes to the metadata readers, both as a bare
// TIFF block and inside each container: never a panic, and a returned
// orientation is always one of the eight.
func FuzzEXIF(f *testing.F) {
	addSeeds(f)
	f.Add(tiffWithOrientation(Rotate90CW, false))
	f.Add(tiffWithOrientation(Transverse, true))
	f.Fuzz(func(t *testing.T, data []byte) {
		if o, err := tiffOrientation(data); err == nil && (o < Upright || o > Rotate270CW) {
			t.Fatalf("orientation %d accepted", o)
		}
		for _, fm := range []Format{JPEG, PNG, WebP, GIF} {
			o, _ := readOrientation(fm, data)
			if o < Upright || o > Rotate270CW {
				t.Fatalf("%s: orientation %d returned", fm, o)
			}
		}
	})
}
