package photo

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// allocated measures the bytes f allocates.
func allocated(f func()) int64 {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return int64(after.TotalAlloc - before.TotalAlloc)
}

// costCases are files whose decode is measured: the costly kinds (16-bit
// PNG, progressive JPEG at 4:4:4 and 4:2:0) and one of every other kind.
func costCases(t *testing.T) map[string][]byte {
	t.Helper()
	const w, h = 600, 400
	nrgba64 := image.NewNRGBA64(image.Rect(0, 0, w, h))
	rgba64 := image.NewRGBA64(image.Rect(0, 0, w, h))
	gray16 := image.NewGray16(image.Rect(0, 0, w, h))
	nrgba := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			c := color.NRGBA64{uint16(x * 97), uint16(y * 131), uint16(x * y), uint16(40000 + x)}
			nrgba64.Set(x, y, c)
			rgba64.Set(x, y, color.RGBA64{uint16(x * 97), uint16(y * 131), uint16(x * y), 0xffff})
			gray16.Set(x, y, color.Gray16{uint16(x * y)})
			nrgba.Set(x, y, color.NRGBA{uint8(x), uint8(y), uint8(x ^ y), 200})
		}
	}
	enc := func(img image.Image) []byte {
		var b bytes.Buffer
		if err := png.Encode(&b, img); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}
	var jb bytes.Buffer
	if err := jpeg.Encode(&jb, nrgba, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"16-bit NRGBA PNG": enc(nrgba64), "16-bit RGB PNG": enc(rgba64), "16-bit gray PNG": enc(gray16),
		"8-bit NRGBA PNG": enc(nrgba), "baseline JPEG": jb.Bytes(),
	}
	for _, name := range []string{"progressive444.jpg", "progressive420.jpg", "gradient.lossless.webp", "lossless.webp", "lossy.webp", "frame.gif", "rotated6.jpg"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		cases[name] = data
	}
	return cases
}

// TestDecodeCostBoundsMeasuredMemory: for every kind of file, the cost
// Decode checks before decoding is at least what decoding it allocates,
// and not so far above it that the limit refuses what it could afford.
func TestDecodeCostBoundsMeasuredMemory(t *testing.T) {
	for name, data := range costCases(t) {
		f, err := Sniff(data)
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := decodeConfig(f, data)
		if err != nil {
			t.Fatal(err)
		}
		cost, why := decodeCost(f, data, cfg)
		var decodeErr error
		used := allocated(func() { _, _, decodeErr = Decode(data, DefaultLimits) })
		if decodeErr != nil {
			t.Fatalf("%s: %v", name, decodeErr)
		}
		px := int64(cfg.Width * cfg.Height)
		t.Logf("%-20s %4d×%-4d measured %5.2f B/px, estimated %5.2f B/px %s", name, cfg.Width, cfg.Height,
			float64(used)/float64(px), float64(cost)/float64(px), why)
		if cost < used {
			t.Errorf("%s: estimated %d bytes, decoding allocated %d", name, cost, used)
		}
		if cost > 2*used+decodeSlack {
			t.Errorf("%s: estimated %d bytes, more than twice the %d allocated", name, cost, used)
		}
	}
}

// TestCostlyFilesRefusedBeforeDecoding: with the pixel count well within
// the limits, a file whose decode would cost more than MaxDecodeBytes is
// refused as too large, naming what makes it costly — at the default
// limits a 16 MP progressive 4:4:4 JPEG, but not a 16 MP 16-bit PNG.
func TestCostlyFilesRefusedBeforeDecoding(t *testing.T) {
	progressive, err := os.ReadFile(filepath.Join("testdata", "progressive444.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	var png16 bytes.Buffer
	if err := png.Encode(&png16, image.NewNRGBA64(image.Rect(0, 0, 640, 480))); err != nil {
		t.Fatal(err)
	}
	small := Limits{MaxBytes: 1 << 20, MaxPixels: 1 << 20, MaxDecodeBytes: 4 << 20}
	for name, tc := range map[string]struct {
		data []byte
		lim  Limits
		want string
	}{
		"progressive JPEG over a small budget":   {progressive, small, "progressive JPEG of 640×480"},
		"16-bit PNG over a small budget":         {png16.Bytes(), Limits{MaxBytes: 1 << 20, MaxPixels: 1 << 20, MaxDecodeBytes: 2 << 20}, "16 bits per channel PNG of 640×480"},
		"16 MP progressive 4:4:4 JPEG, defaults": {jpegHeaderOnly(4000, 4000, true), DefaultLimits, "progressive JPEG of 4000×4000 pixels would take about"},
	} {
		_, _, err := Decode(tc.data, tc.lim)
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "the limit is") {
			t.Errorf("%s: %v; want too large, naming %q and the limit", name, err, tc.want)
		}
	}
	// Within the default budget, a header-only file gets as far as the
	// decoder, which finds no image data.
	for name, data := range map[string][]byte{
		"16 MP 16-bit PNG":             pngHeaderOnlyDepth(4000, 4000, 16, 6),
		"16 MP baseline 4:4:4 JPEG":    jpegHeaderOnly(4000, 4000, false),
		"16 MP progressive 4:2:0 JPEG": jpegHeaderOnly420(4000, 4000),
	} {
		if _, _, err := Decode(data, DefaultLimits); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v; want it decoded (and found corrupt), not refused", name, err)
		}
	}
}

// jpegHeaderOnly is a JPEG with a start-of-frame for w×h at 4:4:4 and no
// scan.
func jpegHeaderOnly(w, h int, progressive bool) []byte {
	sof := byte(0xC0)
	if progressive {
		sof = 0xC2
	}
	b := []byte{0xFF, 0xD8, 0xFF, sof, 0, 17, 8, byte(h >> 8), byte(h), byte(w >> 8), byte(w), 3,
		1, 0x11, 0, 2, 0x11, 1, 3, 0x11, 1}
	b = append(b, 0xFF, 0xDA, 0, 12, 3, 1, 0, 2, 0x11, 3, 0x11, 0, 63, 0) // start of scan
	return append(b, 0xFF, 0xD9)
}

func jpegHeaderOnly420(w, h int) []byte {
	b := jpegHeaderOnly(w, h, true)
	b[13] = 0x22 // luma sampled 2×2, chroma 1×1
	return b
}

// pngHeaderOnlyDepth is a PNG signature and IHDR for w×h at the given bit
// depth and colour type, then an empty IDAT.
func pngHeaderOnlyDepth(w, h uint32, depth, colour byte) []byte {
	b := pngHeaderOnly(w, h)
	b[24], b[25] = depth, colour
	binary.BigEndian.PutUint32(b[29:], crc32.ChecksumIEEE(b[12:29]))
	return b
}
