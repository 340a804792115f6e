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
	"slices"
	"strconv"
	"strings"

	"reword/shared/clip"
)

// An edit link carries a spec in the URL fragment (after "#", so it never
// reaches a server log):
//
//	v6.<base64url, no padding>
//
// The payload is the spec's canonical JSON compressed with raw DEFLATE and
// the version's preset dictionary, followed by the big-endian CRC-32
// (IEEE) of the compressed bytes, so a damaged or edited link is refused
// instead of decoding to a different edit. (A checksum of the JSON instead
// would let edits to DEFLATE's ignored padding bits through.) The version
// prefix changes whenever the format, the dictionary or the meaning of a
// spec field does; a build refuses versions newer than its own and reads
// the older ones it knows.
//
// Versions: v1 had "blend" as one list of words for every prompt; v2 has
// one entry per target ({"words": […], "exclude": […]}). A v1 link opens
// with each target blending the v1 words that occur in the source or in
// it; a target with none of them is not blended (v1 turned such a target
// into a copy of the source, which was the bug v2 fixes).
//
// "kinds", "replace_tail", "self_max_tokens", "keep_source_text" and
// "norm" joined v2 without a new version: they are optional, and absent
// they mean what every link before them ran (each target's kind from its
// words, the aligned tail, the model's default self-replace layers, each
// target's own text states and GroupNorm statistics), so every v2 link
// still opens as
// it ran — except a photo edit on a model with an SD-shaped latent, whose
// default layers became PnPInversion's (PhotoSelfMaxTokens) with the
// field (the tiny model's are unchanged). A build that predates them refuses a link that sets
// them as an unknown field rather than running a different edit.
//
// v3 changed the meaning of "norm": in v2 the targets' GroupNorms took the
// source's mean and variance, in v3 its mean alone (docs/algorithm.md,
// 7.1), and omitted it takes the model's default, which v3 brought (the
// tiny model's is 0.4). Its dictionary is v2's. A v2 link that sets a norm
// window is refused, since no build runs that edit any more; every other
// v1 and v2 link opens as it ran, with the norm window off.
//
// "cross_changed" joined v3 without a new version: absent, a target's
// swapped words took the model's default for it, and no model had one.
//
// v4 gave the tiny model defaults for both cross windows (cross 1, and
// cross_changed 0.4 for the words a swap changes), so a spec that states
// neither runs another edit there than it did. Its dictionary is v3's.
// Every v1, v2 and v3 link opens as it ran (BeforeCrossChanged): on the
// tiny model its cross is 0.8 where it states none, and its swapped words
// take its cross where it gives them no window of their own.
//
// "blend_changed" and "decode_norm" joined v4 without a new version:
// absent, they took the model's defaults, and no model had one.
//
// v5 gave the tiny model defaults for both (blend_changed on, decode_norm
// "swaps"), so a spec for it that leaves them out blends and decodes
// where it did not. Its dictionary is v4's. Every v1 to v4 link opens as
// it ran (BeforeBlendDefaults): on the tiny model, blend_changed false and
// decode_norm "own" where it states none.
//
// "blend_reweighted" joined v5 without a new version: absent, it took
// the model's default, and no model had one.
//
// v6 gave the tiny model a default for it (on), so a spec for it that
// leaves it out blends its reweights where it did not. Its dictionary is
// v5's. Every v1 to v5 link opens as it ran (BeforeReweightBlend): on the
// tiny model, blend_reweighted false where it states none.
const (
	linkPrefix   = "v6."
	linkPrefixV5 = "v5."
	linkPrefixV4 = "v4."
	linkPrefixV3 = "v3."
	linkPrefixV2 = "v2."
	linkPrefixV1 = "v1."
	// linkVersion is the version EncodeLink writes.
	linkVersion = MeaningVersion
	// MaxLinkBytes bounds an accepted fragment: longer input is refused
	// before any decoding work.
	MaxLinkBytes = 4096
)

// MeaningVersion numbers what a spec's fields mean: it changes whenever
// one of them comes to run another edit (3: norm takes the source's mean
// alone, and a model may set a default for it; 4: the tiny model's cross
// windows have defaults; 5: the tiny model blends on the changed words and
// decodes its swaps with the source's statistics by default; 6: it blends
// its reweights on their words by default), so that whatever is kept by spec (links, stored
// results, a browser's history) can tell the specs of an earlier meaning
// apart.
const MeaningVersion = 6

// linkDictionaryV1 is the preset dictionary of v1 links: the JSON that specs
// shared. Part of the format: never change it.
const linkDictionaryV1 = `{"source":"a photo of a ","targets":["a painting of a ","negative":"","seed":` +
	`,"steps":50,"guidance":7.5,"width":512,"height":512,"scheduler":"ddim","model":"tiny",` +
	`"cross":0.8,"cross_words":{"":[0.2,0.8]},"self":0.4,"reweights":{"":2,"blend":["` +
	`"image":"","inversion":"direct"} with a in on of the and next to sitting on a table`

// linkDictionaryV6 is the preset dictionary of v6 links: v5's (v6 changed
// a default, not the JSON that specs share).
const linkDictionaryV6 = linkDictionaryV5

// linkDictionaryV5 is the preset dictionary of v5 links: v4's (v5 changed
// a default, not the JSON that specs share).
const linkDictionaryV5 = linkDictionaryV4

// linkDictionaryV4 is the preset dictionary of v4 links: v3's (v4 changed
// defaults, not the JSON that specs share).
const linkDictionaryV4 = linkDictionaryV3

// linkDictionaryV3 is the preset dictionary of v3 links: v2's (v3 changed
// a field's meaning, not the JSON that specs share).
const linkDictionaryV3 = linkDictionaryV2

// linkDictionaryV2 is the preset dictionary of v2 links. Part of the
// format: never change it without a new version.
const linkDictionaryV2 = `{"source":"a photo of a ","targets":["a painting of a ","negative":"","seed":` +
	`,"steps":50,"guidance":7.5,"width":512,"height":512,"scheduler":"ddim","model":"tiny",` +
	`"cross":0.8,"cross_words":{"":[0.2,0.8]},"self":0.4,"reweights":{"":2,` +
	`"blend":[{},{"words":["","exclude":["` +
	`"image":"","inversion":"direct"} with a in on of the and next to sitting on a table`

// EncodeLink returns the link fragment of s (without the "#").
func EncodeLink(s Spec) (string, error) {
	js, err := s.MarshalJSON()
	if err != nil {
		return "", fmt.Errorf("edit link: %w", err)
	}
	if len(js) > MaxSpecBytes {
		return "", fmt.Errorf("edit link: %w", &linkSizeError{jsonBytes: len(js)})
	}
	link := linkPrefix + base64.RawURLEncoding.EncodeToString(compress(js, linkDictionaryV6))
	if len(link) > MaxLinkBytes {
		return "", fmt.Errorf("edit link: %w", &linkSizeError{chars: len(link)})
	}
	return link, nil
}

// linkSizeError is EncodeLink's error for a spec too big for a link: its
// JSON is over MaxSpecBytes, or its link over MaxLinkBytes, which
// DecodeLink would refuse. Resolve reports it as a problem of the prompts
// (the server links every result, so such a spec would otherwise fail
// only after the model ran).
type linkSizeError struct {
	jsonBytes int // the spec's JSON, when over MaxSpecBytes; else 0
	chars     int // the link's length, when over MaxLinkBytes; else 0
}

func (e *linkSizeError) Error() string {
	if e.jsonBytes > 0 {
		return fmt.Sprintf("the spec is %d bytes of JSON; the limit is %d (shorten the prompts)", e.jsonBytes, MaxSpecBytes)
	}
	return fmt.Sprintf("the link would be %d characters; the limit is %d (shorten the prompts)", e.chars, MaxLinkBytes)
}

// compress is the payload of a link: js deflated with dict, then the
// checksum of the compressed bytes.
func compress(js []byte, dict string) []byte {
	var buf bytes.Buffer
	zw, err := flate.NewWriterDict(&buf, flate.BestCompression, []byte(dict))
	if err != nil {
		panic(err) // only an invalid level fails
	}
	zw.Write(js) // writes to a bytes.Buffer do not fail
	zw.Close()
	return binary.BigEndian.AppendUint32(buf.Bytes(), crc32.ChecksumIEEE(buf.Bytes()))
}

// DecodeLink parses a link fragment made by EncodeLink, or by an older
// build (v1 to v5, see above). It accepts the fragment alone, with its "#", or a
// whole URL. The spec is decoded strictly (see ParseSpec) but not
// validated: call Validate with the model's defaults.
func DecodeLink(link string) (Spec, error) {
	if i := strings.LastIndexByte(link, '#'); i >= 0 {
		link = link[i+1:]
	}
	if len(link) > MaxLinkBytes {
		return Spec{}, fmt.Errorf("edit link is %d characters; the limit is %d", len(link), MaxLinkBytes)
	}
	for _, f := range linkFormats {
		if payload, ok := strings.CutPrefix(link, f.prefix); ok {
			js, err := decompress(payload, f.dictionary)
			if err != nil {
				return Spec{}, err
			}
			return f.parse(js)
		}
	}
	v, _, dot := strings.Cut(link, ".")
	if n, err := strconv.Atoi(strings.TrimPrefix(v, "v")); dot && strings.HasPrefix(v, "v") && err == nil && n > linkVersion {
		return Spec{}, fmt.Errorf("edit link has format version %d; this build reads versions 1 to %d (update Reword)", n, linkVersion)
	}
	return Spec{}, fmt.Errorf("not an edit link: it should start with %q", linkPrefix)
}

// linkFormats are the link versions this build reads, the current first:
// each one's prefix, preset dictionary and how its JSON becomes a current
// spec that runs as the link ran.
var linkFormats = []struct {
	prefix, dictionary string
	parse              func(js []byte) (Spec, error)
}{
	{linkPrefix, linkDictionaryV6, func(js []byte) (Spec, error) {
		s, err := ParseSpec(js)
		if err != nil {
			return Spec{}, fmt.Errorf("edit link: %w", err)
		}
		return s, nil
	}},
	{linkPrefixV5, linkDictionaryV5, func(js []byte) (Spec, error) {
		s, err := ParseSpec(js)
		if err != nil {
			return Spec{}, fmt.Errorf("edit link (version 5): %w", err)
		}
		return BeforeReweightBlend(s), nil
	}},
	{linkPrefixV4, linkDictionaryV4, func(js []byte) (Spec, error) {
		s, err := ParseSpec(js)
		if err != nil {
			return Spec{}, fmt.Errorf("edit link (version 4): %w", err)
		}
		return BeforeReweightBlend(BeforeBlendDefaults(s)), nil
	}},
	{linkPrefixV3, linkDictionaryV3, func(js []byte) (Spec, error) {
		s, err := ParseSpec(js)
		if err != nil {
			return Spec{}, fmt.Errorf("edit link (version 3): %w", err)
		}
		return BeforeReweightBlend(BeforeBlendDefaults(BeforeCrossChanged(s))), nil
	}},
	{linkPrefixV2, linkDictionaryV2, parseSpecV2},
	{linkPrefixV1, linkDictionaryV1, parseSpecV1},
}

// decompress checks and inflates a link's payload.
func decompress(payload, dict string) ([]byte, error) {
	raw, err := base64.RawURLEncoding.Strict().DecodeString(payload)
	if err != nil {
		return nil, fmt.Errorf("edit link is damaged: not base64url text (%v)", err)
	}
	if len(raw) < 5 {
		return nil, errors.New("edit link is damaged: too short")
	}
	compressed, sum := raw[:len(raw)-4], binary.BigEndian.Uint32(raw[len(raw)-4:])
	if crc32.ChecksumIEEE(compressed) != sum {
		return nil, errors.New("edit link is damaged: checksum mismatch (copy the whole link again)")
	}
	br := bytes.NewReader(compressed) // an io.ByteReader: flate reads no further than its stream
	zr := flate.NewReaderDict(br, []byte(dict))
	js, err := io.ReadAll(io.LimitReader(zr, MaxSpecBytes+1))
	if err != nil {
		return nil, fmt.Errorf("edit link is damaged: %v", err)
	}
	if len(js) > MaxSpecBytes {
		return nil, fmt.Errorf("edit link holds more than %d bytes of spec; refused", MaxSpecBytes)
	}
	if br.Len() != 0 {
		return nil, errors.New("edit link is damaged: unexpected data after the compressed spec")
	}
	return js, nil
}

// parseSpecV2 decodes a v2 spec, which is a v3 spec unless it sets a norm
// window: v2's norm shared the source's GroupNorm variance too, an edit
// that no build runs any more, so such a link is refused rather than
// opened as another edit.
func parseSpecV2(js []byte) (Spec, error) {
	s, err := ParseSpec(js)
	if err != nil {
		return Spec{}, fmt.Errorf("edit link (version 2): %w", err)
	}
	if s.Norm != nil && s.Norm.End > s.Norm.Start {
		return Spec{}, errors.New("edit link (version 2) sets norm, which in the build that made it gave the targets " +
			"the source's GroupNorm mean and variance; this build gives them the mean alone, so the link cannot open as it ran " +
			"(make the edit again with a current build to share it)")
	}
	return BeforeReweightBlend(BeforeBlendDefaults(BeforeCrossChanged(BeforeNormDefault(s)))), nil
}

// BeforeNormDefault is a spec kept before meaning version 3 (a v1 or v2
// link, a browser's v2 history) as it ran: without a norm window where it
// states none, whatever the model's default is now. s is not changed.
func BeforeNormDefault(s Spec) Spec {
	if s.Norm == nil {
		s = s.Clone()
		s.Norm = &Window{}
	}
	return s
}

// crossBeforeV4 is the tiny model's cross window before meaning version
// 4, for every token: Prompt-to-Prompt's usual 0.8 (it set no default).
const crossBeforeV4 = 0.8

// TinyModelID is the id of the tiny model Reword embeds (the name in its
// model.json), the one model whose defaults meaning versions 4 to 6
// changed.
const TinyModelID = "reword-tiny"

// BeforeCrossChanged is a spec kept before meaning version 4 (a v1, v2 or
// v3 link, a browser's v3 history) as it ran. Only the tiny model's cross
// defaults changed, so only a spec for it, or for no model named (the
// server's, the tiny model unless told otherwise), is changed: it states
// the cross window it ran, 0.8 where it states none, and its swapped words
// run at that window unless it states a window of their own. A spec for
// another model runs under that model's defaults, which did not change,
// and is returned as it is. s is not changed.
func BeforeCrossChanged(s Spec) Spec {
	if s.Model != "" && s.Model != TinyModelID {
		return s
	}
	s = s.Clone()
	if s.Cross == nil {
		w := Fraction(crossBeforeV4)
		s.Cross = &w
	}
	if s.CrossChanged == nil {
		w := *s.Cross
		s.CrossChanged = &w
	}
	return s
}

// BeforeBlendDefaults is a spec kept before meaning version 5 (a v1 to v4
// link, a browser's v4 history) as it ran: no model blended on the
// changed words or decoded with the source's statistics by default, so a
// spec for the tiny model (or for no model named) states blend_changed
// false and decode_norm "own" where it leaves them out. A spec for
// another model is returned as it is: its defaults did not change. s is
// not changed.
func BeforeBlendDefaults(s Spec) Spec {
	if (s.BlendChanged != nil && s.DecodeNorm != "") || (s.Model != "" && s.Model != TinyModelID) {
		return s
	}
	s = s.Clone()
	if s.BlendChanged == nil {
		off := false
		s.BlendChanged = &off
	}
	if s.DecodeNorm == "" {
		s.DecodeNorm = DecodeNormOwn
	}
	return s
}

// BeforeReweightBlend is a spec kept before meaning version 6 (a v1 to v5
// link, a browser's v5 history) as it ran: no model blended its reweights
// on their words by default, so a spec for the tiny model (or for no model
// named) states blend_reweighted false where it leaves it out. A spec for
// another model is returned as it is. s is not changed.
func BeforeReweightBlend(s Spec) Spec {
	if s.BlendReweighted != nil || (s.Model != "" && s.Model != TinyModelID) {
		return s
	}
	s = s.Clone()
	off := false
	s.BlendReweighted = &off
	return s
}

// specV1 is the spec of v1 links: blend was one list of words that every
// prompt looked up. The outer Blend hides the embedded one in JSON.
type specV1 struct {
	plainSpec
	Blend []string `json:"blend,omitempty"`
}

type plainSpec Spec // no methods: the JSON of its fields as they are

// parseSpecV1 decodes a v1 spec as strictly as ParseSpec and gives each
// target the v1 blend words that occur in the source or in it.
func parseSpecV1(js []byte) (Spec, error) {
	var v specV1
	if err := decodeStrict(js, &v); err != nil {
		return Spec{}, fmt.Errorf("edit link (version 1): %w", err)
	}
	s := Spec(v.plainSpec)
	s.Blend = nil
	s = BeforeReweightBlend(BeforeBlendDefaults(BeforeCrossChanged(BeforeNormDefault(s))))
	if len(v.Blend) > 0 {
		tok, err := clip.Default()
		if err != nil {
			return Spec{}, err
		}
		in := s.Words(tok)
		for i := range s.Targets {
			var b Blend
			for _, w := range v.Blend {
				if found, _ := in.InBlendOf(i, w); found && !slices.Contains(b.Words, w) {
					b.Words = append(b.Words, w)
				}
			}
			s.SetBlend(i, b)
		}
	}
	s.normalize()
	return s, nil
}
