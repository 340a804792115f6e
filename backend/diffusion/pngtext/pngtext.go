// Package pngtext writes PNG images that carry UTF-8 text entries (iTXt
// chunks), and reads them back: Reword stores each image's EditSpec in one
// so that an image carries its own recipe, and beside it the version of
// what the spec's fields meant when it ran.
package pngtext

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/png"
	"io"
	"strconv"

	"reword/shared/edit"
)

// SpecKey is the keyword under which Reword stores an image's EditSpec JSON.
const SpecKey = "reword:edit-spec"

// MeaningKey is the keyword under which Reword stores, beside the spec, the
// version of what its fields meant (edit.MeaningVersion, in decimal): a
// spec that leaves a field out ran with the defaults of that version, as
// an edit link's version says.
const MeaningKey = "reword:spec-meaning"

// Entry is one text entry of a PNG: a keyword of 1–79 printable ASCII
// characters and UTF-8 text.
type Entry struct{ Keyword, Text string }

// SpecEntries are the entries of an image an edit spec made: the spec's
// JSON and the meaning version this build runs specs under.
func SpecEntries(specJSON []byte) []Entry {
	return []Entry{{SpecKey, string(specJSON)}, {MeaningKey, strconv.Itoa(edit.MeaningVersion)}}
}

var signature = []byte("\x89PNG\r\n\x1a\n")

// Encode writes img as a PNG with one iTXt chunk per entry, in order, right
// after the header.
func Encode(w io.Writer, img image.Image, entries ...Entry) error {
	for _, e := range entries {
		if len(e.Keyword) == 0 || len(e.Keyword) > 79 {
			return fmt.Errorf("pngtext: keyword %q must be 1 to 79 characters", e.Keyword)
		}
		for _, c := range []byte(e.Keyword) {
			if c < 32 || c > 126 {
				return fmt.Errorf("pngtext: keyword %q must be printable ASCII", e.Keyword)
			}
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return err
	}
	data := buf.Bytes()
	// The signature is followed by IHDR: 4 length + 4 type + 13 data + 4 CRC.
	const ihdrEnd = 8 + 4 + 4 + 13 + 4
	if len(data) < ihdrEnd || !bytes.Equal(data[:8], signature) {
		return errors.New("pngtext: the PNG encoder produced an unexpected header")
	}
	if _, err := w.Write(data[:ihdrEnd]); err != nil {
		return err
	}
	for _, e := range entries {
		// iTXt: keyword, NUL, compression flag 0, method 0, empty language
		// tag, NUL, empty translated keyword, NUL, UTF-8 text.
		payload := append([]byte(e.Keyword), 0, 0, 0, 0, 0)
		payload = append(payload, e.Text...)
		if err := writeChunk(w, "iTXt", payload); err != nil {
			return err
		}
	}
	_, err := w.Write(data[ihdrEnd:])
	return err
}

func writeChunk(w io.Writer, typ string, payload []byte) error {
	head := make([]byte, 8)
	binary.BigEndian.PutUint32(head, uint32(len(payload)))
	copy(head[4:], typ)
	crc := crc32.NewIEEE()
	crc.Write(head[4:])
	crc.Write(payload)
	tail := binary.BigEndian.AppendUint32(nil, crc.Sum32())
	for _, b := range [][]byte{head, payload, tail} {
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// Read returns the text of the first uncompressed iTXt or tEXt chunk named
// keyword in a PNG, and whether there was one.
func Read(r io.Reader, keyword string) (string, bool, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return "", false, err
	}
	if len(data) < 8 || !bytes.Equal(data[:8], signature) {
		return "", false, errors.New("pngtext: not a PNG file")
	}
	for off := 8; off+12 <= len(data); {
		n := int(binary.BigEndian.Uint32(data[off:]))
		typ := string(data[off+4 : off+8])
		if n < 0 || off+12+n > len(data) {
			return "", false, fmt.Errorf("pngtext: chunk %q at byte %d runs past the end of the file", typ, off)
		}
		body := data[off+8 : off+8+n]
		off += 12 + n
		switch typ {
		case "tEXt":
			if k, v, ok := bytes.Cut(body, []byte{0}); ok && string(k) == keyword {
				return string(v), true, nil
			}
		case "iTXt":
			k, rest, ok := bytes.Cut(body, []byte{0})
			if !ok || string(k) != keyword || len(rest) < 2 || rest[0] != 0 {
				continue
			}
			_, rest, ok = bytes.Cut(rest[2:], []byte{0}) // language tag
			if !ok {
				continue
			}
			if _, text, ok := bytes.Cut(rest, []byte{0}); ok { // translated keyword
				return string(text), true, nil
			}
		case "IEND":
			return "", false, nil
		}
	}
	return "", false, nil
}
