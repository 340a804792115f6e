// Package photo turns an uploaded photo into the square (or model-sized)
// RGB image a diffusion model can encode: it recognises PNG, JPEG, WebP and
// GIF (first frame) by their bytes, refuses files and decoded sizes beyond
// the limits before decoding (so a decompression bomb costs nothing), turns
// the picture upright by its EXIF orientation, flattens transparency onto
// white, and fits it to the model's size by centre crop or letterbox with a
// Catmull-Rom resampler.
//
// Errors wrap one of ErrTooLarge, ErrUnsupported or ErrCorrupt, so callers
// (the server, the CLI) can map them to a status without parsing messages.
package photo

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"strings"

	xdraw "golang.org/x/image/draw"
	"golang.org/x/image/webp"

	"reword/shared/limits"
)

// Errors every failure wraps, by cause.
var (
	// ErrTooLarge: the file or its decoded pixel count exceeds the limits.
	ErrTooLarge = errors.New("photo too large")
	// ErrUnsupported: not PNG, JPEG, WebP or GIF, or a feature of one of
	// them that the decoders lack (such as animated WebP).
	ErrUnsupported = errors.New("unsupported image format")
	// ErrCorrupt: the file claims a supported format but cannot be decoded.
	ErrCorrupt = errors.New("corrupt image")
)

// Format is a supported file format.
type Format string

// The supported formats.
const (
	PNG  Format = "PNG"
	JPEG Format = "JPEG"
	WebP Format = "WebP"
	GIF  Format = "GIF"
)

// Limits bound what Decode accepts. All are checked before any pixel is
// decoded: the byte count on the input, the pixel count and the memory
// the decode would take on the header.
type Limits struct {
	// MaxBytes caps the file size.
	MaxBytes int64
	// MaxPixels caps width × height as the header declares them.
	MaxPixels int64
	// MaxDecodeBytes caps the memory one decode may allocate, as
	// estimated from the header (see decodeCost): it is what refuses a
	// 16-bit PNG or a progressive JPEG that the pixel cap lets through.
	MaxDecodeBytes int64
}

// DefaultLimits are the server's default upload limits.
var DefaultLimits = Limits{MaxBytes: limits.UploadBytes, MaxPixels: limits.UploadPixels, MaxDecodeBytes: limits.UploadDecodeBytes}

// maxSide caps either dimension whatever the pixel budget, so a 1×40M strip
// cannot make the resampler's intermediate buffers huge.
const maxSide = 1 << 15

// Info describes a decoded file.
type Info struct {
	Format Format
	// Width and Height are as stored, before the orientation is applied.
	Width, Height int
	Orientation   Orientation
	// MetadataProblem says why EXIF metadata was ignored ("" if it was
	// read or absent); the image is then treated as upright.
	MetadataProblem string
}

// Sniff names the format of data from its first bytes.
func Sniff(data []byte) (Format, error) {
	switch {
	case bytes.HasPrefix(data, []byte("\x89PNG\r\n\x1a\n")):
		return PNG, nil
	case bytes.HasPrefix(data, []byte{0xFF, 0xD8, 0xFF}):
		return JPEG, nil
	case len(data) >= 12 && string(data[:4]) == "RIFF" && string(data[8:12]) == "WEBP":
		return WebP, nil
	case bytes.HasPrefix(data, []byte("GIF87a")), bytes.HasPrefix(data, []byte("GIF89a")):
		return GIF, nil
	}
	return "", fmt.Errorf("%w: %s; upload a PNG, JPEG, WebP or GIF", ErrUnsupported, describeUnknown(data))
}

// describeUnknown names common formats Reword does not read, so that the
// error tells the user what to convert from.
func describeUnknown(data []byte) string {
	switch {
	case len(data) == 0:
		return "the file is empty"
	case len(data) >= 12 && string(data[4:8]) == "ftyp" && strings.Contains("heic heix mif1 msf1 hevc", string(data[8:12])):
		return "the file is HEIC/HEIF"
	case len(data) >= 12 && string(data[4:8]) == "ftyp" && strings.HasPrefix(string(data[8:12]), "avi"):
		return "the file is AVIF"
	case bytes.HasPrefix(data, []byte("BM")):
		return "the file is BMP"
	case bytes.HasPrefix(data, []byte("II*\x00")), bytes.HasPrefix(data, []byte("MM\x00*")):
		return "the file is TIFF"
	case bytes.HasPrefix(data, []byte("<svg")), bytes.HasPrefix(data, []byte("<?xml")):
		return "the file is SVG or XML"
	}
	return "the file's format is not recognised"
}

// Decode checks data against lim, decodes it and returns the stored image
// (not yet turned upright) with what was learnt about it.
func Decode(data []byte, lim Limits) (image.Image, Info, error) {
	if lim.MaxBytes <= 0 || lim.MaxPixels <= 0 || lim.MaxDecodeBytes <= 0 {
		return nil, Info{}, fmt.Errorf("photo limits must be positive, got %d bytes, %d pixels and %d bytes to decode", lim.MaxBytes, lim.MaxPixels, lim.MaxDecodeBytes)
	}
	if int64(len(data)) > lim.MaxBytes {
		return nil, Info{}, fmt.Errorf("%w: the file has %d bytes; the limit is %d", ErrTooLarge, len(data), lim.MaxBytes)
	}
	f, err := Sniff(data)
	if err != nil {
		return nil, Info{}, err
	}
	if f == WebP && animatedWebP(data) {
		return nil, Info{Format: f}, fmt.Errorf("%w: the WebP is animated; upload a still image", ErrUnsupported)
	}
	cfg, err := decodeConfig(f, data)
	if err != nil {
		return nil, Info{}, decodeError(f, "header", err)
	}
	info := Info{Format: f, Width: cfg.Width, Height: cfg.Height}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, info, fmt.Errorf("%w: the %s header declares %d×%d pixels", ErrCorrupt, f, cfg.Width, cfg.Height)
	}
	if cfg.Width > maxSide || cfg.Height > maxSide || int64(cfg.Width)*int64(cfg.Height) > lim.MaxPixels {
		return nil, info, fmt.Errorf("%w: the %s is %d×%d pixels; the limit is %d pixels and %d per side",
			ErrTooLarge, f, cfg.Width, cfg.Height, lim.MaxPixels, maxSide)
	}
	if cost, why := decodeCost(f, data, cfg); cost > lim.MaxDecodeBytes {
		return nil, info, tooCostly(f, cfg, cost, why, lim.MaxDecodeBytes)
	}
	img, err := decodeImage(f, data)
	if err != nil {
		return nil, info, decodeError(f, "image", err)
	}
	// A GIF's first frame may cover only part of its logical screen.
	if b := img.Bounds(); b.Dx() != cfg.Width || b.Dy() != cfg.Height {
		canvas := image.NewRGBA(image.Rect(0, 0, cfg.Width, cfg.Height))
		xdraw.Draw(canvas, canvas.Bounds(), image.NewUniform(color.White), image.Point{}, xdraw.Src)
		xdraw.Draw(canvas, b, img, b.Min, xdraw.Over)
		img = canvas
	}
	o, err := readOrientation(f, data)
	if err != nil {
		info.MetadataProblem = err.Error()
	}
	info.Orientation = o
	return img, info, nil
}

func decodeConfig(f Format, data []byte) (image.Config, error) {
	r := bytes.NewReader(data)
	switch f {
	case PNG:
		return png.DecodeConfig(r)
	case JPEG:
		return jpeg.DecodeConfig(r)
	case WebP:
		return webp.DecodeConfig(r)
	default:
		return gif.DecodeConfig(r)
	}
}

// decodeImage decodes the whole image, or a GIF's first frame only (an
// animation's later frames are never read).
func decodeImage(f Format, data []byte) (image.Image, error) {
	r := bytes.NewReader(data)
	switch f {
	case PNG:
		return png.Decode(r)
	case JPEG:
		return jpeg.Decode(r)
	case WebP:
		return webp.Decode(r)
	default:
		return gif.Decode(r)
	}
}

// decodeError classifies a decoder error: the standard decoders report
// features they lack with "unsupported"; everything else is corruption.
func decodeError(f Format, part string, err error) error {
	var pngU png.UnsupportedError
	var jpegU jpeg.UnsupportedError
	if errors.As(err, &pngU) || errors.As(err, &jpegU) || strings.Contains(err.Error(), "unsupported") {
		return fmt.Errorf("%w: the %s uses a feature Reword cannot decode (%v)", ErrUnsupported, f, err)
	}
	return fmt.Errorf("%w: the %s %s cannot be decoded (%v)", ErrCorrupt, f, part, err)
}

// animatedWebP reports whether an extended WebP (VP8X first chunk) sets its
// animation flag; the decoder would reject it with a vaguer error.
func animatedWebP(data []byte) bool {
	const flags = 20 // after "RIFF", size, "WEBP", "VP8X", chunk size
	return len(data) > flags && string(data[12:16]) == "VP8X" && data[flags]&0x02 != 0
}
