package photo

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"image"
)

// The pixel limit alone does not bound what a decode costs: the standard
// decoders hold 1 to 15 bytes per pixel depending on the file (a 16-bit
// PNG decodes to 8 bytes per pixel, a progressive JPEG keeps every DCT
// coefficient, 4 bytes per sample, until its last scan). decodeCost
// estimates, from the header alone, the bytes a decode allocates, so
// that Decode can refuse a costly file before decoding it. The estimates
// follow the decoders of the Go standard library and golang.org/x/image
// and are checked against measured allocations in cost_test.go; each is
// an upper bound.

// decodeSlack covers a decoder's fixed buffers (zlib window, Huffman
// tables, row buffers of small images).
const decodeSlack = 256 << 10

// decodeCost estimates the bytes decoding data allocates, and names what
// makes it costly ("" for nothing special).
func decodeCost(f Format, data []byte, cfg image.Config) (bytes int64, why string) {
	w, h := int64(cfg.Width), int64(cfg.Height)
	px := w * h
	switch f {
	case PNG:
		return pngCost(data, w, h)
	case JPEG:
		return jpegCost(data, w, h)
	case WebP:
		// Lossless VP8L decodes to one uint32 per pixel, then converts to
		// NRGBA (8 bytes per pixel in all); lossy VP8 to Y'CbCr 4:2:0 with
		// an optional alpha plane (2.5).
		if isLossless(data) {
			return 8*px + decodeSlack, "lossless WebP"
		}
		return 3*px + decodeSlack, ""
	default:
		// The first frame (one byte per pixel), and the white canvas
		// Decode draws a smaller frame on (four).
		return 5*px + decodeSlack, ""
	}
}

// pngCost: the decoded image (bytes per pixel by colour type and bit
// depth), twice for an interlaced file (each pass is decoded into an
// image of its own, then merged), and two rows of filter buffers.
func pngCost(data []byte, w, h int64) (int64, string) {
	const ihdr = 8 + 8 // signature, chunk length and type
	if len(data) < ihdr+13 {
		return 8*w*h*2 + decodeSlack, ""
	}
	depth, colour, interlace := data[ihdr+8], data[ihdr+9], data[ihdr+12]
	bpp, why := int64(4), ""
	switch {
	case colour == 3 || (colour == 0 && depth <= 8): // paletted, gray
		bpp = 1
	case colour == 0: // 16-bit gray
		bpp, why = 2, "16 bits per channel"
	case depth == 16: // RGB, gray+alpha, RGBA at 16 bits
		bpp, why = 8, "16 bits per channel"
	}
	samples := map[byte]int64{0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
	rowBytes := (w*max(samples, 1)*int64(depth) + 7) / 8
	cost := bpp*w*h + 2*rowBytes + decodeSlack
	if interlace == 1 {
		cost += bpp * w * h
		if why == "" {
			why = "interlaced"
		} else {
			why += ", interlaced"
		}
	}
	return cost, why
}

// jpegFrame is what the cost of a JPEG decode depends on, read from its
// markers up to the first scan.
type jpegFrame struct {
	progressive bool
	comps       []struct{ id, h, v byte }
	jfif        bool
	adobe       bool // an Adobe APP14 segment with transform 0 (RGB or CMYK as stored)
}

// jpegCost: the Y'CbCr (or gray) planes padded to whole MCUs; for a
// progressive file every component's coefficients (64 int32 per 8×8
// block); for CMYK the black plane and the converted image; for RGB as
// stored the converted RGBA image.
func jpegCost(data []byte, w, h int64) (int64, string) {
	fr, ok := readJPEGFrame(data)
	if !ok || len(fr.comps) == 0 {
		// Unreadable markers (the decoder will say why): the worst case.
		return (5*4+4)*w*h + decodeSlack, ""
	}
	var hmax, vmax int64 = 1, 1
	for _, c := range fr.comps {
		hmax, vmax = max(hmax, int64(c.h)), max(vmax, int64(c.v))
	}
	mxx, myy := (w+8*hmax-1)/(8*hmax), (h+8*vmax-1)/(8*vmax)
	var blocks int64 // 8×8 blocks of every component
	for _, c := range fr.comps {
		blocks += mxx * myy * max(int64(c.h), 1) * max(int64(c.v), 1)
	}
	cost := 64*blocks + decodeSlack
	why := ""
	if fr.progressive {
		cost += 256 * blocks
		why = "progressive"
	}
	n := len(fr.comps)
	rgb := n == 3 && !fr.jfif && (fr.adobe || fr.comps[0].id == 'R' && fr.comps[1].id == 'G' && fr.comps[2].id == 'B')
	if n == 4 || rgb {
		cost += 4 * w * h
	}
	return cost, why
}

// readJPEGFrame walks the marker segments up to the start of scan.
func readJPEGFrame(data []byte) (jpegFrame, bool) {
	var fr jpegFrame
	if len(data) < 4 || data[0] != 0xFF || data[1] != 0xD8 {
		return fr, false
	}
	for p := 2; p+4 <= len(data); {
		if data[p] != 0xFF {
			return fr, false
		}
		marker := data[p+1]
		switch {
		case marker == 0xFF: // fill byte before a marker
			p++
			continue
		case marker == 0x01 || marker >= 0xD0 && marker <= 0xD7:
			p += 2 // markers without a length
			continue
		case marker == 0xDA || marker == 0xD9: // start of scan, end of image
			return fr, true
		}
		size := int(binary.BigEndian.Uint16(data[p+2:]))
		if size < 2 || p+2+size > len(data) {
			return fr, false
		}
		seg := data[p+4 : p+2+size]
		switch {
		case marker == 0xE0 && bytes.HasPrefix(seg, []byte("JFIF\x00")):
			fr.jfif = true
		case marker == 0xEE && bytes.HasPrefix(seg, []byte("Adobe")) && len(seg) >= 12:
			fr.adobe = seg[11] == 0
		case marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC:
			// SOFn: precision, height, width, components.
			fr.progressive = marker == 0xC2 || marker == 0xC6 || marker == 0xCA || marker == 0xCE
			if len(seg) < 6 || len(seg) < 6+3*int(seg[5]) {
				return fr, false
			}
			fr.comps = fr.comps[:0]
			for i := range int(seg[5]) {
				c := seg[6+3*i:]
				fr.comps = append(fr.comps, struct{ id, h, v byte }{c[0], c[1] >> 4, c[1] & 15})
			}
		}
		p += 2 + size
	}
	return fr, false
}

// isLossless reports whether a WebP holds a VP8L (lossless) bitstream.
func isLossless(data []byte) bool {
	return bytes.Contains(data[:min(len(data), 64)], []byte("VP8L"))
}

// tooCostly is Decode's error for a file whose decode would cost more
// than the limit.
func tooCostly(f Format, cfg image.Config, cost int64, why string, limit int64) error {
	kind := string(f)
	if why != "" {
		kind = why + " " + kind
	}
	return fmt.Errorf("%w: decoding this %s of %d×%d pixels would take about %d MiB of memory; the limit is %d MiB: upload a smaller image",
		ErrTooLarge, kind, cfg.Width, cfg.Height, (cost+(1<<20)-1)>>20, limit>>20)
}
