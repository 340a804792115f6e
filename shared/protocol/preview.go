package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Preview frames are binary WebSocket messages, so that pixels never go
// through JSON. Layout (big-endian):
//
//	offset size field
//	0      4    magic "RWP1" (Reword preview, layout 1)
//	4      1    format (FormatRGBA or FormatPNG)
//	5      1    length n of the request id
//	6      2    row
//	8      2    step (1-based: the preview after that many steps)
//	10     2    total steps
//	12     2    width
//	14     2    height
//	16     n    request id (UTF-8)
//	16+n   …    pixels: width·height·4 bytes of RGBA, or one PNG file
//
// RGBA is what a canvas's putImageData takes, so the browser draws a frame
// without decoding it.
type Preview struct {
	ID     string
	Format PreviewFormat
	Row    int
	Step   int
	Total  int
	Width  int
	Height int
	Pixels []byte
}

// PreviewFormat says how Preview.Pixels are encoded.
type PreviewFormat byte

// Preview formats.
const (
	FormatRGBA PreviewFormat = 1
	FormatPNG  PreviewFormat = 2
)

const previewMagic = "RWP1"

// previewHeader is the fixed part of a frame.
const previewHeader = 16

// MaxPreviewSide bounds a preview's width and height.
const MaxPreviewSide = 1024

// EncodePreview builds a binary preview frame.
func EncodePreview(p Preview) ([]byte, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	b := make([]byte, previewHeader+len(p.ID)+len(p.Pixels))
	copy(b, previewMagic)
	b[4] = byte(p.Format)
	b[5] = byte(len(p.ID))
	binary.BigEndian.PutUint16(b[6:], uint16(p.Row))
	binary.BigEndian.PutUint16(b[8:], uint16(p.Step))
	binary.BigEndian.PutUint16(b[10:], uint16(p.Total))
	binary.BigEndian.PutUint16(b[12:], uint16(p.Width))
	binary.BigEndian.PutUint16(b[14:], uint16(p.Height))
	copy(b[previewHeader:], p.ID)
	copy(b[previewHeader+len(p.ID):], p.Pixels)
	return b, nil
}

// DecodePreview parses a binary preview frame. The returned Pixels alias b.
func DecodePreview(b []byte) (Preview, error) {
	if len(b) < previewHeader || string(b[:4]) != previewMagic {
		return Preview{}, errors.New("not a preview frame (bad magic or too short)")
	}
	n := int(b[5])
	if len(b) < previewHeader+n {
		return Preview{}, errors.New("preview frame is shorter than its request id")
	}
	p := Preview{
		Format: PreviewFormat(b[4]),
		Row:    int(binary.BigEndian.Uint16(b[6:])),
		Step:   int(binary.BigEndian.Uint16(b[8:])),
		Total:  int(binary.BigEndian.Uint16(b[10:])),
		Width:  int(binary.BigEndian.Uint16(b[12:])),
		Height: int(binary.BigEndian.Uint16(b[14:])),
		ID:     string(b[previewHeader : previewHeader+n]),
		Pixels: b[previewHeader+n:],
	}
	if err := p.check(); err != nil {
		return Preview{}, err
	}
	return p, nil
}

func (p Preview) check() error {
	switch {
	case len(p.ID) > 255:
		return fmt.Errorf("preview request id is %d bytes; the limit is 255", len(p.ID))
	case p.Format != FormatRGBA && p.Format != FormatPNG:
		return fmt.Errorf("unknown preview format %d", p.Format)
	case p.Width < 1 || p.Height < 1 || p.Width > MaxPreviewSide || p.Height > MaxPreviewSide:
		return fmt.Errorf("preview size %dx%d is outside 1..%d", p.Width, p.Height, MaxPreviewSide)
	case p.Row < 0 || p.Row > 0xffff || p.Step < 0 || p.Step > 0xffff || p.Total < 0 || p.Total > 0xffff || p.Step > p.Total:
		return fmt.Errorf("preview row %d, step %d of %d is out of range", p.Row, p.Step, p.Total)
	case p.Format == FormatRGBA && len(p.Pixels) != 4*p.Width*p.Height:
		return fmt.Errorf("RGBA preview of %dx%d needs %d bytes, has %d", p.Width, p.Height, 4*p.Width*p.Height, len(p.Pixels))
	}
	return nil
}
