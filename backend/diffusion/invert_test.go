package diffusion

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"image"
	"image/png"
	"math"
	"math/rand/v2"
	"sync/atomic"
	"testing"

	"reword/backend/photo"
	"reword/models/tiny/scene"
	"reword/shared/edit"
)

// drawnPhoto renders a scene of the tiny model's world with the scene
// drawer (not the model) and returns its PNG bytes and caption.
func drawnPhoto(t testing.TB, c scene.Colour, s scene.Shape, p scene.Position, seed uint64) ([]byte, *image.RGBA, string) {
	t.Helper()
	cap := scene.NewCaption([]scene.Mention{{Object: scene.Object{Shape: s, Colour: c, Position: p}, NamesColour: true, NamesPosition: true}}, 0, false)
	sc, err := scene.SceneFor(rand.New(rand.NewPCG(seed, 1)), cap)
	if err != nil {
		t.Fatal(err)
	}
	img := sc.Render()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), img, cap.Text
}

func hashOf(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// The norm window is off (see spec).
func photoSpec(steps int, source, method string, data []byte, targets ...string) edit.Spec {
	return edit.Spec{Source: source, Targets: targets, Seed: ptr(uint64(1)), Steps: ptr(steps),
		Image: hashOf(data), Inversion: method, Norm: &edit.Window{}}
}

func psnrRGB(a, b []byte) float64 {
	var sum float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		sum += d * d
	}
	if sum == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(255*255/(sum/float64(len(a))))
}

// Direct Inversion's source row is the VAE round trip of the photo, and a
// second edit of the same photo and caption reuses the cached inversion.
func TestDirectInversionReconstructsAndCaches(t *testing.T) {
	e := loadTiny(t, Options{})
	ctx := context.Background()
	const steps = 6
	data, _, caption := drawnPhoto(t, scene.Red, scene.Circle, scene.Left, 3)
	rt, err := e.RoundTrip(ctx, Photo{Data: data})
	if err != nil {
		t.Fatal(err)
	}
	first, err := e.Edit(ctx, photoSpec(steps, caption, edit.InversionDirect, data, "a green circle on the left"), RunOptions{Photo: &Photo{Data: data}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if first.SourceCached || first.UNetRows != steps+3*steps || first.Timings.Inversion == 0 {
		t.Fatalf("first edit: cached %v, rows %d, inversion %v; want a fresh inversion of %d rows then %d rows",
			first.SourceCached, first.UNetRows, first.Timings.Inversion, steps, 3*steps)
	}
	if !bytes.Equal(first.Images[0].RGB, rt.RGB) {
		t.Fatalf("direct reconstruction differs from the VAE round trip (PSNR %.1f dB)", psnrRGB(first.Images[0].RGB, rt.RGB))
	}
	if bytes.Equal(first.Images[1].RGB, first.Images[0].RGB) {
		t.Fatal("the target is the reconstruction: the edit did nothing")
	}
	second, err := e.Edit(ctx, photoSpec(steps, caption, edit.InversionDirect, data, "a blue circle on the left"), RunOptions{Photo: &Photo{Data: data}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !second.SourceCached || second.UNetRows != 3*steps || second.Timings.Inversion != 0 {
		t.Fatalf("second edit: cached %v, rows %d, inversion %v; want the cached inversion and %d rows",
			second.SourceCached, second.UNetRows, second.Timings.Inversion, 3*steps)
	}
	if !bytes.Equal(second.Images[0].RGB, rt.RGB) {
		t.Fatal("reconstruction from the cached inversion differs")
	}
	// Another fit is another image: no cache hit.
	lb, err := e.Edit(ctx, photoSpec(steps, caption, edit.InversionDirect, data, "a blue circle on the left"), RunOptions{Photo: &Photo{Data: data, Fit: photo.Letterbox}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if lb.SourceCached {
		t.Fatal("a letterboxed fit was served the cropped fit's inversion")
	}
}

// Every method runs; negative-prompt inversion reconstructs the photo far
// better than plain DDIM inversion sampled with guidance.
func TestInversionMethods(t *testing.T) {
	e := loadTiny(t, Options{CacheBytes: -1})
	ctx := context.Background()
	const steps = 10
	data, _, caption := drawnPhoto(t, scene.Blue, scene.Square, scene.Center, 5)
	rt, err := e.RoundTrip(ctx, Photo{Data: data})
	if err != nil {
		t.Fatal(err)
	}
	psnr := map[string]float64{}
	for _, m := range edit.Inversions {
		res, err := e.Edit(ctx, photoSpec(steps, caption, m, data, "a yellow square in the center"), RunOptions{Photo: &Photo{Data: data}}, nil)
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		rows := 3 * steps
		if m != edit.InversionDirect {
			rows = 4 * steps // the source row is sampled too
		}
		if res.UNetRows != steps+rows || len(res.Images) != 2 {
			t.Errorf("%s: %d rows, %d images; want %d and 2", m, res.UNetRows, len(res.Images), steps+rows)
		}
		psnr[m] = psnrRGB(res.Images[0].RGB, rt.RGB)
	}
	t.Logf("reconstruction PSNR vs VAE round trip: %v", psnr)
	if !math.IsInf(psnr[edit.InversionDirect], 1) {
		t.Errorf("direct: %.1f dB; want identical to the round trip", psnr[edit.InversionDirect])
	}
	if psnr[edit.InversionNPI] < psnr[edit.InversionDDIM]+3 {
		t.Errorf("npi %.1f dB is not clearly better than ddim %.1f dB", psnr[edit.InversionNPI], psnr[edit.InversionDDIM])
	}
}

// withPNGEXIF inserts an eXIf chunk with the given orientation after IHDR.
func withPNGEXIF(data []byte, orientation uint16) []byte {
	tiff := []byte("II*\x00\x08\x00\x00\x00\x01\x00\x12\x01\x03\x00\x01\x00\x00\x00")
	tiff = binary.LittleEndian.AppendUint16(tiff, orientation)
	tiff = append(tiff, 0, 0, 0, 0, 0, 0)
	chunk := binary.BigEndian.AppendUint32(nil, uint32(len(tiff)))
	chunk = append(append(chunk, "eXIf"...), tiff...)
	chunk = binary.BigEndian.AppendUint32(chunk, crc32.ChecksumIEEE(chunk[4:]))
	const afterIHDR = 8 + 8 + 13 + 4
	return append(append(append([]byte{}, data[:afterIHDR]...), chunk...), data[afterIHDR:]...)
}

// A photo stored upside down with EXIF orientation 3 is inverted upright:
// its round trip is the upright photo's.
func TestEXIFRotatedPhoto(t *testing.T) {
	e := loadTiny(t, Options{CacheBytes: -1})
	ctx := context.Background()
	data, img, _ := drawnPhoto(t, scene.Orange, scene.Triangle, scene.Top, 9)
	flipped := image.NewRGBA(img.Rect)
	w, h := img.Rect.Dx(), img.Rect.Dy()
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			flipped.Set(w-1-x, h-1-y, img.At(x, y))
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, flipped); err != nil {
		t.Fatal(err)
	}
	rotated := withPNGEXIF(b.Bytes(), 3)
	up, err := e.RoundTrip(ctx, Photo{Data: data})
	if err != nil {
		t.Fatal(err)
	}
	turned, err := e.RoundTrip(ctx, Photo{Data: rotated})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(up.RGB, turned.RGB) {
		t.Fatalf("the EXIF-rotated photo was not turned upright (PSNR %.1f dB to the upright one)", psnrRGB(up.RGB, turned.RGB))
	}
}

func TestBadPhotos(t *testing.T) {
	e := loadTiny(t, Options{CacheBytes: -1})
	ctx := context.Background()
	data, _, caption := drawnPhoto(t, scene.Red, scene.Star, scene.Right, 4)
	bomb := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR\x00\x01\x86\xa0\x00\x01\x86\xa0\x08\x02\x00\x00\x00")
	bomb = binary.BigEndian.AppendUint32(bomb, crc32.ChecksumIEEE(bomb[12:29]))
	for _, tc := range []struct {
		name  string
		spec  edit.Spec
		photo *Photo
		want  error  // a cause errors.Is must find, or nil
		text  string // otherwise a part of the message
	}{
		{"corrupt", photoSpec(4, caption, "", data[:200], "x"), &Photo{Data: data[:200]}, photo.ErrCorrupt, ""},
		{"unsupported", photoSpec(4, caption, "", []byte("BM6\x00"), "x"), &Photo{Data: []byte("BM6\x00")}, photo.ErrUnsupported, ""},
		{"bomb", photoSpec(4, caption, "", bomb, "x"), &Photo{Data: bomb}, photo.ErrTooLarge, ""},
		{"over the byte limit", photoSpec(4, caption, "", data, "x"), &Photo{Data: data, Limits: photo.Limits{MaxBytes: 100, MaxPixels: 1 << 20, MaxDecodeBytes: 1 << 30}}, photo.ErrTooLarge, ""},
		{"no bytes", photoSpec(4, caption, "", data, "x"), nil, nil, "no photo bytes"},
		{"other bytes", photoSpec(4, caption, "", data, "x"), &Photo{Data: bomb}, nil, "not the spec's image"},
		{"bytes without image", spec(4, "x"), &Photo{Data: data}, nil, "no \"image\""},
		{"dpm-solver", func() edit.Spec { s := photoSpec(4, caption, "", data, "x"); s.Scheduler = "dpmpp-2m"; return s }(), &Photo{Data: data}, nil, "needs the ddim scheduler"},
		{"npi with a negative", func() edit.Spec { s := photoSpec(4, caption, "npi", data, "x"); s.Negative = "blurry"; return s }(), &Photo{Data: data}, nil, "cannot be combined"},
	} {
		_, err := e.Edit(ctx, tc.spec, RunOptions{Photo: tc.photo}, nil)
		switch {
		case err == nil:
			t.Errorf("%s: accepted", tc.name)
		case tc.want != nil && !errors.Is(err, tc.want):
			t.Errorf("%s: error %v; want %v", tc.name, err, tc.want)
		case tc.want == nil && !bytes.Contains([]byte(err.Error()), []byte(tc.text)):
			t.Errorf("%s: error %q does not say %q", tc.name, err, tc.text)
		}
	}
}

// cancelAfter is a context that reports cancellation from its n-th Err
// call on: a deterministic way to stop a run in the middle.
type cancelAfter struct {
	context.Context
	n atomic.Int32
}

func (c *cancelAfter) Err() error {
	if c.n.Add(-1) < 0 {
		return context.Canceled
	}
	return nil
}

// A cancelled inversion, before it starts or half way, returns the
// context's error and caches nothing.
func TestInversionCancellation(t *testing.T) {
	e := loadTiny(t, Options{})
	data, _, caption := drawnPhoto(t, scene.Green, scene.Ring, scene.Bottom, 6)
	s := photoSpec(30, caption, edit.InversionDirect, data, "a red ring at the bottom")
	before, cancel := context.WithCancel(context.Background())
	cancel()
	midway := &cancelAfter{Context: context.Background()}
	midway.n.Store(20)
	for name, ctx := range map[string]context.Context{"before": before, "midway": midway} {
		if _, err := e.Edit(ctx, s, RunOptions{Photo: &Photo{Data: data}}, nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled %s: error %v; want context.Canceled", name, err)
		}
		if n, _ := e.CacheStats(); n != 0 {
			t.Fatalf("a cancelled inversion left %d cache entries", n)
		}
	}
	if midway.n.Load() > 0 {
		t.Fatal("the midway context was never consulted")
	}
	res, err := e.Edit(context.Background(), s, RunOptions{Photo: &Photo{Data: data}}, nil)
	if err != nil || res.SourceCached {
		t.Fatalf("edit after cancellation: cached %v, err %v; want a fresh inversion", res != nil && res.SourceCached, err)
	}
}

// Splice decodes the base's latent where no cell is set and the inset's
// where every cell is (exactly the two round trips), takes every channel
// of a set position from the inset, and refuses a mask of the wrong size.
func TestSplice(t *testing.T) {
	e := loadTiny(t, Options{})
	ctx := context.Background()
	red, _, _ := drawnPhoto(t, scene.Red, scene.Circle, scene.Left, 3)
	blue, _, _ := drawnPhoto(t, scene.Blue, scene.Circle, scene.Left, 3)
	m := e.Manifest()
	plane := m.Latent.Width * m.Latent.Height
	all := make([]bool, plane)
	for i := range all {
		all[i] = true
	}
	for _, c := range []struct {
		name  string
		cells []bool
		want  []byte
	}{
		{"no cell", make([]bool, plane), red},
		{"every cell", all, blue},
	} {
		got, err := e.Splice(ctx, Photo{Data: red}, Photo{Data: blue}, c.cells)
		if err != nil {
			t.Fatal(err)
		}
		rt, err := e.RoundTrip(ctx, Photo{Data: c.want})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.RGB, rt.RGB) {
			t.Errorf("%s spliced: not the round trip (PSNR %.1f dB)", c.name, psnrRGB(got.RGB, rt.RGB))
		}
	}
	// The left half of the cells, against the two latents spliced by hand:
	// every channel of a set position comes from the inset.
	left := make([]bool, plane)
	for i := range left {
		left[i] = i%m.Latent.Width < m.Latent.Width/2
	}
	got, err := e.Splice(ctx, Photo{Data: red}, Photo{Data: blue}, left)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := e.encodePhoto(ctx, &Photo{Data: red})
	if err != nil {
		t.Fatal(err)
	}
	zb, err := e.encodePhoto(ctx, &Photo{Data: blue})
	if err != nil {
		t.Fatal(err)
	}
	for c := 0; c < m.Latent.Channels; c++ {
		for p := 0; p < plane; p++ {
			if left[p] {
				zr[c*plane+p] = zb[c*plane+p]
			}
		}
	}
	want, err := e.decode(ctx, zr, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.RGB, want[0]) {
		t.Errorf("left half spliced: not the latents spliced position by position (PSNR %.1f dB)", psnrRGB(got.RGB, want[0]))
	}
	if _, err := e.Splice(ctx, Photo{Data: red}, Photo{Data: blue}, all[:plane-1]); err == nil {
		t.Error("a mask one cell short was accepted")
	}
}
