package photo

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Orientation is the EXIF Orientation tag (0x0112): how the stored pixels
// must be turned to be shown upright. 1 is upright; 2–8 are the seven
// mirrorings and rotations in the order the EXIF standard numbers them.
type Orientation int

// The orientations whose transforms swap width and height are 5–8.
const (
	Upright          Orientation = 1
	MirrorHorizontal Orientation = 2
	Rotate180        Orientation = 3
	MirrorVertical   Orientation = 4
	Transpose        Orientation = 5
	Rotate90CW       Orientation = 6
	Transverse       Orientation = 7
	Rotate270CW      Orientation = 8
)

// SwapsAxes reports whether showing the image upright exchanges its width
// and height.
func (o Orientation) SwapsAxes() bool { return o >= Transpose && o <= Rotate270CW }

// exifPrefix starts the EXIF payload of a JPEG APP1 segment, and often of a
// WebP EXIF chunk too (encoders disagree; both spellings are accepted).
var exifPrefix = []byte("Exif\x00\x00")

// errNoOrientation means the metadata was readable and has no orientation.
var errNoOrientation = errors.New("no orientation tag")

// tiffOrientation reads the Orientation tag from IFD0 of a TIFF-structured
// EXIF block. Every offset is checked against the block, so a hostile file
// can make it fail but never read out of bounds or loop.
func tiffOrientation(b []byte) (Orientation, error) {
	if len(b) < 8 {
		return 0, fmt.Errorf("EXIF block of %d bytes is shorter than a TIFF header", len(b))
	}
	var order binary.ByteOrder
	switch string(b[:2]) {
	case "II":
		order = binary.LittleEndian
	case "MM":
		order = binary.BigEndian
	default:
		return 0, fmt.Errorf("EXIF block has byte order %q; want II or MM", b[:2])
	}
	if order.Uint16(b[2:]) != 42 {
		return 0, errors.New("EXIF block is not TIFF (magic number is not 42)")
	}
	ifd := uint64(order.Uint32(b[4:]))
	if ifd+2 > uint64(len(b)) {
		return 0, fmt.Errorf("EXIF IFD0 offset %d lies outside the %d-byte block", ifd, len(b))
	}
	n := uint64(order.Uint16(b[ifd:]))
	const entrySize = 12
	if ifd+2+n*entrySize > uint64(len(b)) {
		return 0, fmt.Errorf("EXIF IFD0 claims %d entries; the block ends before them", n)
	}
	for i := uint64(0); i < n; i++ {
		e := b[ifd+2+i*entrySize:]
		if order.Uint16(e) != 0x0112 {
			continue
		}
		typ, count := order.Uint16(e[2:]), order.Uint32(e[4:])
		if typ != 3 || count != 1 { // SHORT, one value, stored inline
			return 0, fmt.Errorf("EXIF orientation has type %d and count %d; want one SHORT", typ, count)
		}
		o := Orientation(order.Uint16(e[8:]))
		if o < Upright || o > Rotate270CW {
			return 0, fmt.Errorf("EXIF orientation %d is not one of 1–8", o)
		}
		return o, nil
	}
	return 0, errNoOrientation
}

// jpegEXIF returns the TIFF block of the first EXIF APP1 segment of a JPEG
// stream, or nil. It walks the marker segments up to the start of scan.
func jpegEXIF(data []byte) []byte {
	if len(data) < 4 || data[0] != 0xFF || data[1] != 0xD8 {
		return nil
	}
	for p := 2; p+4 <= len(data); {
		if data[p] != 0xFF {
			return nil
		}
		marker := data[p+1]
		switch {
		case marker == 0xFF: // fill byte before a marker
			p++
			continue
		case marker == 0xD8 || marker >= 0xD0 && marker <= 0xD7 || marker == 0x01:
			p += 2 // markers without a length
			continue
		case marker == 0xDA || marker == 0xD9: // start of scan, end of image
			return nil
		}
		size := int(binary.BigEndian.Uint16(data[p+2:]))
		if size < 2 || p+2+size > len(data) {
			return nil
		}
		seg := data[p+4 : p+2+size]
		if marker == 0xE1 && bytes.HasPrefix(seg, exifPrefix) {
			return seg[len(exifPrefix):]
		}
		p += 2 + size
	}
	return nil
}

// pngEXIF returns the payload of a PNG eXIf chunk (a bare TIFF block), or
// nil. The chunk must come before the image data.
func pngEXIF(data []byte) []byte {
	const sigLen = 8
	for p := sigLen; p+8 <= len(data); {
		n := uint64(binary.BigEndian.Uint32(data[p:]))
		typ := string(data[p+4 : p+8])
		end := uint64(p) + 8 + n + 4 // header, payload, CRC
		if end > uint64(len(data)) {
			return nil
		}
		switch typ {
		case "eXIf":
			return data[p+8 : p+8+int(n)]
		case "IDAT", "IEND":
			return nil
		}
		p = int(end)
	}
	return nil
}

// webpEXIF returns the payload of a WebP EXIF chunk without any "Exif\0\0"
// prefix, or nil.
func webpEXIF(data []byte) []byte {
	const header = 12 // "RIFF", size, "WEBP"
	for p := header; p+8 <= len(data); {
		n := uint64(binary.LittleEndian.Uint32(data[p+4:]))
		if uint64(p)+8+n > uint64(len(data)) {
			return nil
		}
		if string(data[p:p+4]) == "EXIF" {
			return bytes.TrimPrefix(data[p+8:p+8+int(n)], exifPrefix)
		}
		p += 8 + int(n) + int(n&1) // chunks are padded to even sizes
	}
	return nil
}

// readOrientation finds the EXIF orientation of a file of the given format.
// A file without EXIF, or whose EXIF has no orientation, is upright.
// Metadata that cannot be parsed is treated as upright too, as browsers do,
// and reported by the error so that callers can say why nothing turned.
func readOrientation(f Format, data []byte) (Orientation, error) {
	var block []byte
	switch f {
	case JPEG:
		block = jpegEXIF(data)
	case PNG:
		block = pngEXIF(data)
	case WebP:
		block = webpEXIF(data)
	}
	if block == nil {
		return Upright, nil
	}
	o, err := tiffOrientation(block)
	if errors.Is(err, errNoOrientation) {
		return Upright, nil
	}
	if err != nil {
		return Upright, err
	}
	return o, nil
}
