package photo

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the seed files in testdata")

// Quadrant colours of the test picture: stored top-left, top-right,
// bottom-left, bottom-right. Far apart, so JPEG loss cannot confuse them.
var (
	red    = color.RGBA{230, 20, 20, 255}
	green  = color.RGBA{20, 200, 40, 255}
	blue   = color.RGBA{20, 40, 230, 255}
	yellow = color.RGBA{240, 230, 20, 255}
)

// quadrants draws a w×h picture of four coloured quadrants.
func quadrants(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := red
			switch {
			case x >= w/2 && y < h/2:
				c = green
			case x < w/2 && y >= h/2:
				c = blue
			case x >= w/2 && y >= h/2:
				c = yellow
			}
			img.SetRGBA(x, y, c)
		}
	}
	return img
}

func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodeJPEG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// tiffWithOrientation is a minimal EXIF block: IFD0 with one Orientation
// entry, in the byte order given.
func tiffWithOrientation(o Orientation, bigEndian bool) []byte {
	var order binary.AppendByteOrder = binary.LittleEndian
	b := []byte("II")
	if bigEndian {
		order, b = binary.BigEndian, []byte("MM")
	}
	b = order.AppendUint16(b, 42)
	b = order.AppendUint32(b, 8)
	b = order.AppendUint16(b, 2) // two entries: a decoy, then the orientation
	b = order.AppendUint16(b, 0x010F)
	b = order.AppendUint16(b, 2)
	b = order.AppendUint32(b, 4)
	b = append(b, "Go\x00\x00"...)
	b = order.AppendUint16(b, 0x0112)
	b = order.AppendUint16(b, 3)
	b = order.AppendUint32(b, 1)
	b = order.AppendUint16(b, uint16(o))
	b = append(b, 0, 0)
	return order.AppendUint32(b, 0) // no next IFD
}

// withJPEGEXIF inserts an APP1 EXIF segment right after SOI.
func withJPEGEXIF(data, tiff []byte) []byte {
	payload := append(append([]byte{}, exifPrefix...), tiff...)
	seg := []byte{0xFF, 0xE1}
	seg = binary.BigEndian.AppendUint16(seg, uint16(len(payload)+2))
	seg = append(seg, payload...)
	out := append([]byte{}, data[:2]...)
	out = append(out, seg...)
	return append(out, data[2:]...)
}

// withPNGChunk inserts a chunk right after IHDR.
func withPNGChunk(data []byte, typ string, payload []byte) []byte {
	const afterIHDR = 8 + 8 + 13 + 4
	chunk := binary.BigEndian.AppendUint32(nil, uint32(len(payload)))
	chunk = append(chunk, typ...)
	chunk = append(chunk, payload...)
	chunk = binary.BigEndian.AppendUint32(chunk, crc32.ChecksumIEEE(chunk[4:]))
	out := append([]byte{}, data[:afterIHDR]...)
	out = append(out, chunk...)
	return append(out, data[afterIHDR:]...)
}

// pngHeaderOnly is a valid PNG signature and IHDR declaring w×h, followed
// by a tiny IDAT: what a decompression bomb looks like to DecodeConfig.
func pngHeaderOnly(w, h uint32) []byte {
	out := []byte("\x89PNG\r\n\x1a\n")
	ihdr := binary.BigEndian.AppendUint32(nil, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 2, 0, 0, 0) // 8-bit RGB
	add := func(typ string, payload []byte) {
		c := binary.BigEndian.AppendUint32(nil, uint32(len(payload)))
		c = append(c, typ...)
		c = append(c, payload...)
		out = binary.BigEndian.AppendUint32(append(out, c...), crc32.ChecksumIEEE(c[4:]))
	}
	add("IHDR", ihdr)
	add("IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})
	add("IEND", nil)
	return out
}

// at returns the colour at (x, y) and whether it is within tol of want.
func near(c color.Color, want color.RGBA, tol int) bool {
	r, g, b, _ := c.RGBA()
	d := func(a uint32, w uint8) int { return abs(int(a>>8) - int(w)) }
	return d(r, want.R) <= tol && d(g, want.G) <= tol && d(b, want.B) <= tol
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// The upright quadrants of a 2×2-block picture for every orientation: what
// a viewer shows at top-left, top-right, bottom-left, bottom-right.
var uprightCorners = map[Orientation][4]color.RGBA{
	Upright:          {red, green, blue, yellow},
	MirrorHorizontal: {green, red, yellow, blue},
	Rotate180:        {yellow, blue, green, red},
	MirrorVertical:   {blue, yellow, red, green},
	Transpose:        {red, blue, green, yellow},
	Rotate90CW:       {blue, red, yellow, green},
	Transverse:       {yellow, green, blue, red},
	Rotate270CW:      {green, yellow, red, blue},
}

func checkCorners(t *testing.T, img image.Image, want [4]color.RGBA, tol int) {
	t.Helper()
	b := img.Bounds()
	pts := []image.Point{{b.Min.X + 2, b.Min.Y + 2}, {b.Max.X - 3, b.Min.Y + 2}, {b.Min.X + 2, b.Max.Y - 3}, {b.Max.X - 3, b.Max.Y - 3}}
	for i, p := range pts {
		if !near(img.At(p.X, p.Y), want[i], tol) {
			t.Errorf("corner %d at %v is %v, want %v", i, p, img.At(p.X, p.Y), want[i])
		}
	}
}

func TestEveryOrientationTurnsUpright(t *testing.T) {
	// A non-square picture, so that axis swaps show in the output size.
	stored := quadrants(40, 24)
	for o := Upright; o <= Rotate270CW; o++ {
		for _, big := range []bool{false, true} {
			data := withPNGChunk(encodePNG(t, stored), "eXIf", tiffWithOrientation(o, big))
			_, info, err := Decode(data, DefaultLimits)
			if err != nil || info.Orientation != o || info.MetadataProblem != "" {
				t.Fatalf("orientation %d (big endian %v): info %+v, err %v", o, big, info, err)
			}
			// Letterbox keeps the whole picture; the output is square, so
			// check the content's aspect ratio by where the white bars are.
			img, _, err := Prepare(data, 48, 48, Letterbox, DefaultLimits)
			if err != nil {
				t.Fatal(err)
			}
			bars := near(img.At(24, 1), color.RGBA{255, 255, 255, 255}, 0) // bars top and bottom: landscape
			if bars == o.SwapsAxes() {
				t.Errorf("orientation %d: landscape bars %v, want %v", o, bars, !o.SwapsAxes())
			}
			full, _, err := Prepare(data, 40, 40, Crop, DefaultLimits)
			if err != nil {
				t.Fatal(err)
			}
			checkCorners(t, full, uprightCorners[o], 2)
		}
	}
}

func TestJPEGEXIFOrientation(t *testing.T) {
	data := withJPEGEXIF(encodeJPEG(t, quadrants(64, 32)), tiffWithOrientation(Rotate90CW, true))
	img, info, err := Prepare(data, 32, 32, Crop, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if info.Format != JPEG || info.Orientation != Rotate90CW || info.Width != 64 || info.Height != 32 {
		t.Fatalf("info %+v", info)
	}
	checkCorners(t, img, uprightCorners[Rotate90CW], 40)
}

func TestMalformedEXIFIsIgnoredAndReported(t *testing.T) {
	bad := tiffWithOrientation(Rotate90CW, false)
	binary.LittleEndian.PutUint32(bad[4:], 1<<30) // IFD0 far outside the block
	data := withPNGChunk(encodePNG(t, quadrants(16, 16)), "eXIf", bad)
	_, info, err := Decode(data, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if info.Orientation != Upright || info.MetadataProblem == "" {
		t.Fatalf("info %+v; want upright with a metadata problem", info)
	}
}

func TestCropAndLetterbox(t *testing.T) {
	// 90×30: the centre crop keeps the middle third (red right half of the
	// left quadrants is cut away only at the edges).
	src := quadrants(90, 30)
	data := encodePNG(t, src)
	crop, _, err := Prepare(data, 30, 30, Crop, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if crop.Bounds().Dx() != 30 || crop.Bounds().Dy() != 30 {
		t.Fatalf("crop is %v", crop.Bounds())
	}
	// The crop is x in [30, 60): both halves of the quadrant split at 45.
	checkCorners(t, crop, [4]color.RGBA{red, green, blue, yellow}, 0)
	lb, _, err := Prepare(data, 30, 30, Letterbox, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if !near(lb.At(15, 1), color.RGBA{255, 255, 255, 255}, 0) || !near(lb.At(15, 28), color.RGBA{255, 255, 255, 255}, 0) {
		t.Error("letterbox has no white bars above and below a wide photo")
	}
	if !near(lb.At(3, 12), red, 8) || !near(lb.At(27, 17), yellow, 8) {
		t.Errorf("letterbox content: %v %v", lb.At(3, 12), lb.At(27, 17))
	}
}

func TestSameSizeIsNotResampled(t *testing.T) {
	src := image.NewRGBA(image.Rect(0, 0, 64, 64))
	for i := range src.Pix {
		src.Pix[i] = byte(i * 7)
		if i%4 == 3 {
			src.Pix[i] = 255
		}
	}
	img, _, err := Prepare(encodePNG(t, src), 64, 64, Crop, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(img.Pix, src.Pix) {
		t.Fatal("a photo already at the target size changed")
	}
}

func TestDownscaleIsFiltered(t *testing.T) {
	// A one-pixel checkerboard shrunk 8× must come out mid-grey, not
	// black or white as point sampling would give.
	src := image.NewGray(image.Rect(0, 0, 256, 256))
	for y := 0; y < 256; y++ {
		for x := 0; x < 256; x++ {
			if (x+y)%2 == 0 {
				src.Pix[y*256+x] = 255
			}
		}
	}
	img, _, err := Prepare(encodePNG(t, src), 32, 32, Crop, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if !near(img.At(16, 16), color.RGBA{128, 128, 128, 255}, 12) {
		t.Errorf("centre pixel %v; want mid-grey", img.At(16, 16))
	}
}

func TestTransparencyFlattensOntoWhite(t *testing.T) {
	src := image.NewNRGBA(image.Rect(0, 0, 8, 8)) // fully transparent black
	img, _, err := Prepare(encodePNG(t, src), 8, 8, Crop, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if !near(img.At(4, 4), color.RGBA{255, 255, 255, 255}, 0) {
		t.Errorf("transparent pixel became %v; want white", img.At(4, 4))
	}
}

func TestGIFFirstFrame(t *testing.T) {
	pal := color.Palette{color.White, red, blue}
	frame := func(c uint8, r image.Rectangle) *image.Paletted {
		p := image.NewPaletted(r, pal)
		for i := range p.Pix {
			p.Pix[i] = c
		}
		return p
	}
	// The first frame covers only the left half of the screen.
	anim := &gif.GIF{Image: []*image.Paletted{frame(1, image.Rect(0, 0, 8, 16)), frame(2, image.Rect(0, 0, 16, 16))},
		Delay: []int{10, 10}, Config: image.Config{ColorModel: pal, Width: 16, Height: 16}}
	var b bytes.Buffer
	if err := gif.EncodeAll(&b, anim); err != nil {
		t.Fatal(err)
	}
	img, info, err := Prepare(b.Bytes(), 16, 16, Crop, DefaultLimits)
	if err != nil || info.Format != GIF {
		t.Fatalf("info %+v, err %v", info, err)
	}
	if !near(img.At(2, 8), red, 0) || !near(img.At(13, 8), color.RGBA{255, 255, 255, 255}, 0) {
		t.Errorf("GIF: got %v left and %v right; want the first frame (red) over white", img.At(2, 8), img.At(13, 8))
	}
}

func TestWebP(t *testing.T) {
	for _, name := range []string{"lossy.webp", "lossless.webp"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		img, info, err := Prepare(data, 64, 64, Crop, DefaultLimits)
		if err != nil || info.Format != WebP || img.Bounds().Dx() != 64 {
			t.Errorf("%s: info %+v, err %v", name, info, err)
		}
	}
}

func TestBadInputs(t *testing.T) {
	good := encodePNG(t, quadrants(32, 32))
	animated := []byte("RIFF\x00\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00\x02\x00\x00\x00\x0f\x00\x00\x0f\x00\x00")
	for _, tc := range []struct {
		name string
		data []byte
		lim  Limits
		want error
	}{
		{"empty", nil, DefaultLimits, ErrUnsupported},
		{"BMP", []byte("BM\x36\x00\x00\x00"), DefaultLimits, ErrUnsupported},
		{"HEIC", []byte("\x00\x00\x00\x18ftypheic\x00\x00\x00\x00"), DefaultLimits, ErrUnsupported},
		{"text", []byte("hello, world"), DefaultLimits, ErrUnsupported},
		{"animated WebP", animated, DefaultLimits, ErrUnsupported},
		{"too many bytes", good, Limits{MaxBytes: int64(len(good)) - 1, MaxPixels: 1 << 20, MaxDecodeBytes: 1 << 30}, ErrTooLarge},
		{"bomb header", pngHeaderOnly(100_000, 100_000), DefaultLimits, ErrTooLarge},
		{"long strip", pngHeaderOnly(1<<16, 1), DefaultLimits, ErrTooLarge},
		{"pixels over a small limit", good, Limits{MaxBytes: 1 << 20, MaxPixels: 32*32 - 1, MaxDecodeBytes: 1 << 30}, ErrTooLarge},
		{"zero size", pngHeaderOnly(0, 10), DefaultLimits, ErrCorrupt},
		{"truncated PNG", good[:len(good)/2], DefaultLimits, ErrCorrupt},
		{"truncated JPEG", encodeJPEG(t, quadrants(32, 32))[:300], DefaultLimits, ErrCorrupt},
		{"PNG with bad data", pngHeaderOnly(64, 64), DefaultLimits, ErrCorrupt},
		{"WebP signature only", []byte("RIFF\x04\x00\x00\x00WEBP"), DefaultLimits, ErrCorrupt},
	} {
		_, _, err := Prepare(tc.data, 16, 16, Crop, tc.lim)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: error %v; want %v", tc.name, err, tc.want)
		}
	}
}

func TestBadArguments(t *testing.T) {
	good := encodePNG(t, quadrants(8, 8))
	if _, _, err := Prepare(good, 0, 16, Crop, DefaultLimits); err == nil {
		t.Error("zero width accepted")
	}
	if _, _, err := Prepare(good, 16, 16, Fit(7), DefaultLimits); err == nil {
		t.Error("unknown fit accepted")
	}
	if _, _, err := Prepare(good, 16, 16, Crop, Limits{}); err == nil {
		t.Error("zero limits accepted")
	}
	if f, err := ParseFit("letterbox"); err != nil || f != Letterbox {
		t.Errorf("ParseFit(letterbox) = %v, %v", f, err)
	}
	if _, err := ParseFit("stretch"); err == nil {
		t.Error("ParseFit accepted stretch")
	}
}

// seedFiles are the fuzz seeds kept in testdata (besides the two WebP files
// from golang.org/x/image's test data), with what Decode must say of them.
var seedFiles = []struct {
	name        string
	make        func(t testing.TB) []byte
	format      Format
	orientation Orientation
	err         error
}{
	{"quadrants.png", func(t testing.TB) []byte { return encodePNG(t, quadrants(24, 16)) }, PNG, Upright, nil},
	{"rotated6.jpg", func(t testing.TB) []byte {
		return withJPEGEXIF(encodeJPEG(t, quadrants(24, 16)), tiffWithOrientation(Rotate90CW, false))
	}, JPEG, Rotate90CW, nil},
	{"mirrored2.png", func(t testing.TB) []byte {
		return withPNGChunk(encodePNG(t, quadrants(16, 24)), "eXIf", tiffWithOrientation(MirrorHorizontal, true))
	}, PNG, MirrorHorizontal, nil},
	{"frame.gif", func(t testing.TB) []byte {
		var b bytes.Buffer
		if err := gif.Encode(&b, quadrants(16, 16), nil); err != nil {
			t.Fatal(err)
		}
		return b.Bytes()
	}, GIF, Upright, nil},
	{"bomb.png", func(testing.TB) []byte { return pngHeaderOnly(50_000, 50_000) }, PNG, 0, ErrTooLarge},
	{"truncated.jpg", func(t testing.TB) []byte { return encodeJPEG(t, quadrants(16, 16))[:200] }, JPEG, 0, ErrCorrupt},
}

func TestSeedFiles(t *testing.T) {
	for _, s := range seedFiles {
		path := filepath.Join("testdata", s.name)
		if *update {
			if err := os.WriteFile(path, s.make(t), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -run TestSeedFiles -update to write the seed files)", err)
		}
		_, info, err := Decode(data, DefaultLimits)
		if s.err != nil {
			if !errors.Is(err, s.err) {
				t.Errorf("%s: error %v, want %v", s.name, err, s.err)
			}
			continue
		}
		if err != nil || info.Format != s.format || info.Orientation != s.orientation {
			t.Errorf("%s: info %+v, err %v; want %s, orientation %d", s.name, info, err, s.format, s.orientation)
		}
	}
}
