package edit

import (
	"bytes"
	"compress/flate"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strconv"
	"strings"
)

// An edit link carries a spec in the URL fragment (after "#", so it never
// reaches a server log):
//
//	v1.<base64url, no padding>
//
// The payload is the spec's canonical JSON compressed with raw DEFLATE and
// linkDictionaryV1 as preset dictionary, followed by the big-endian CRC-32
// (IEEE) of the compressed bytes, so a damaged or edited link is refused
// instead of decoding to a different edit. (A checksum of the JSON instead
// would let edits to DEFLATE's ignored padding bits through.) The version prefix changes whenever the
// format or the dictionary does; a build refuses versions it does not know.
const (
	linkPrefix = "v1."
	// MaxLinkBytes bounds an accepted fragment: longer input is refused
	// before any decoding work.
	MaxLinkBytes = 4096
)

// linkDictionaryV1 is the preset dictionary of v1 links: the JSON that specs
// share. Part of the format: never change it without a new version.
const linkDictionaryV1 = `{"source":"a photo of a ","targets":["a painting of a ","negative":"","seed":` +
	`,"steps":50,"guidance":7.5,"width":512,"height":512,"scheduler":"ddim","model":"tiny",` +
	`"cross":0.8,"cross_words":{"":[0.2,0.8]},"self":0.4,"reweights":{"":2,"blend":["` +
	`"image":"","inversion":"direct"} with a in on of the and next to sitting on a table`

// EncodeLink returns the link fragment of s (without the "#").
func EncodeLink(s Spec) (string, error) {
	js, err := s.MarshalJSON()
	if err != nil {
		return "", fmt.Errorf("edit link: %w", err)
	}
	if len(js) > MaxSpecBytes {
		return "", fmt.Errorf("edit link: the spec is %d bytes of JSON; the limit is %d", len(js), MaxSpecBytes)
	}
	var buf bytes.Buffer
	zw, err := flate.NewWriterDict(&buf, flate.BestCompression, []byte(linkDictionaryV1))
	if err != nil {
		return "", fmt.Errorf("edit link: %w", err)
	}
	if _, err := zw.Write(js); err != nil {
		return "", fmt.Errorf("edit link: %w", err)
	}
	if err := zw.Close(); err != nil {
		return "", fmt.Errorf("edit link: %w", err)
	}
	buf.Write(binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(buf.Bytes())))
	link := linkPrefix + base64.RawURLEncoding.EncodeToString(buf.Bytes())
	if len(link) > MaxLinkBytes {
		return "", fmt.Errorf("edit link: the link would be %d characters; the limit is %d (shorten the prompts)", len(link), MaxLinkBytes)
	}
	return link, nil
}

// DecodeLink parses a link fragment made by EncodeLink. It accepts the
// fragment alone, with its "#", or a whole URL. The spec is decoded strictly
// (see ParseSpec) but not validated: call Validate with the model's defaults.
func DecodeLink(link string) (Spec, error) {
	if i := strings.LastIndexByte(link, '#'); i >= 0 {
		link = link[i+1:]
	}
	if len(link) > MaxLinkBytes {
		return Spec{}, fmt.Errorf("edit link is %d characters; the limit is %d", len(link), MaxLinkBytes)
	}
	payload, ok := strings.CutPrefix(link, linkPrefix)
	if !ok {
		v, _, dot := strings.Cut(link, ".")
		if n, err := strconv.Atoi(strings.TrimPrefix(v, "v")); dot && strings.HasPrefix(v, "v") && err == nil && n > 1 {
			return Spec{}, fmt.Errorf("edit link has format version %d; this build reads version 1 (update Reword)", n)
		}
		return Spec{}, fmt.Errorf("not an edit link: it should start with %q", linkPrefix)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(payload)
	if err != nil {
		return Spec{}, fmt.Errorf("edit link is damaged: not base64url text (%v)", err)
	}
	if len(raw) < 5 {
		return Spec{}, errors.New("edit link is damaged: too short")
	}
	compressed, sum := raw[:len(raw)-4], binary.BigEndian.Uint32(raw[len(raw)-4:])
	if crc32.ChecksumIEEE(compressed) != sum {
		return Spec{}, errors.New("edit link is damaged: checksum mismatch (copy the whole link again)")
	}
	br := bytes.NewReader(compressed) // an io.ByteReader: flate reads no further than its stream
	zr := flate.NewReaderDict(br, []byte(linkDictionaryV1))
	js, err := io.ReadAll(io.LimitReader(zr, MaxSpecBytes+1))
	if err != nil {
		return Spec{}, fmt.Errorf("edit link is damaged: %v", err)
	}
	if len(js) > MaxSpecBytes {
		return Spec{}, fmt.Errorf("edit link holds more than %d bytes of spec; refused", MaxSpecBytes)
	}
	if br.Len() != 0 {
		return Spec{}, errors.New("edit link is damaged: unexpected data after the compressed spec")
	}
	s, err := ParseSpec(js)
	if err != nil {
		return Spec{}, fmt.Errorf("edit link: %w", err)
	}
	return s, nil
}
