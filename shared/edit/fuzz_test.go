package edit

import (
	"bytes"
	"compress/flate"
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
	"reflect"
	"testing"
)

// encodeRaw builds a current link around arbitrary JSON bytes.
func encodeRaw(t testing.TB, js []byte) string {
	return encodeRawAs(t, linkPrefix, linkDictionaryV6, js)
}

// relinked is s through a current link and back.
func relinked(t testing.TB, s Spec) Spec {
	t.Helper()
	link, err := EncodeLink(s)
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeLink(link)
	if err != nil {
		t.Fatal(err)
	}
	return back
}

// openResolved decodes link (named what in failures) and resolves it
// under d.
func openResolved(t testing.TB, what, link string, d Defaults) (Spec, Resolved) {
	t.Helper()
	s, err := DecodeLink(link)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	r, err := s.Resolve(d)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return s, r
}

// encodeRawV5 builds a version-5 link, as builds before v6 wrote them.
func encodeRawV5(t testing.TB, js []byte) string {
	return encodeRawAs(t, linkPrefixV5, linkDictionaryV5, js)
}

// encodeRawV4 builds a version-4 link, as builds before v5 wrote them.
func encodeRawV4(t testing.TB, js []byte) string {
	return encodeRawAs(t, linkPrefixV4, linkDictionaryV4, js)
}

// encodeRawV2 builds a version-2 link, as builds before v3 wrote them.
func encodeRawV2(t testing.TB, js []byte) string {
	return encodeRawAs(t, linkPrefixV2, linkDictionaryV2, js)
}

// encodeRawV3 builds a version-3 link, as builds before v4 wrote them.
func encodeRawV3(t testing.TB, js []byte) string {
	return encodeRawAs(t, linkPrefixV3, linkDictionaryV3, js)
}

// encodeRawV1 builds a version-1 link, as builds before v2 wrote them.
func encodeRawV1(t testing.TB, js []byte) string {
	return encodeRawAs(t, linkPrefixV1, linkDictionaryV1, js)
}

func encodeRawAs(t testing.TB, prefix, dict string, js []byte) string {
	var buf bytes.Buffer
	zw, err := flate.NewWriterDict(&buf, flate.BestCompression, []byte(dict))
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(js)
	zw.Close()
	buf.Write(binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(buf.Bytes())))
	return prefix + base64.RawURLEncoding.EncodeToString(buf.Bytes())
}

// FuzzDecodeLink: any input either fails with an error or decodes to a spec
// that re-encodes to a link decoding to the same spec.
func FuzzDecodeLink(f *testing.F) {
	link, _ := EncodeLink(squirrel())
	f.Add(link)
	f.Add(encodeRaw(f, []byte(`{"source":"a","targets":["b"],"cross":[0.1,0.2]}`)))
	f.Add(encodeRawV1(f, []byte(`{"source":"a cat","targets":["a dog","a cow"],"blend":["cat","dog"]}`)))
	f.Add(encodeRawV2(f, []byte(`{"source":"a cat","targets":["a dog"],"norm":0.4}`)))
	f.Add(encodeRawV2(f, []byte(`{"source":"a cat","targets":["a dog"],"keep_source_text":true}`)))
	f.Add("v1.AAAA")
	f.Add("#v2.x")
	f.Add(encodeRawV3(f, []byte(`{"source":"a cat","targets":["a dog"],"cross":0.6,"model":"reword-tiny"}`)))
	f.Add(encodeRawV3(f, []byte(`{"source":"a cat","targets":["a dog"],"cross_changed":0.3}`)))
	f.Add("#v3.x")
	f.Add("#v4.x")
	f.Add(encodeRawV4(f, []byte(`{"source":"a cat","targets":["a dog"],"model":"reword-tiny"}`)))
	f.Add(encodeRawV4(f, []byte(`{"source":"a cat","targets":["a dog"],"blend_changed":true,"decode_norm":"source"}`)))
	f.Add("#v5.x")
	f.Add(encodeRawV5(f, []byte(`{"source":"a cat","targets":["a cat"],"reweights":{"cat":-1}}`)))
	f.Add("#v6.x")
	f.Add(encodeRaw(f, []byte(`{"source":"a cat","targets":["a dog"],"decode_norm":"source"}`)))
	f.Add(encodeRaw(f, []byte(`{"source":"a cat","targets":["a dog"],"blend_changed":false,"blend":[{"exclude":["cat"]}]}`)))
	f.Fuzz(func(t *testing.T, in string) {
		s, err := DecodeLink(in)
		if err != nil {
			return
		}
		again, err := EncodeLink(s)
		if err != nil {
			t.Fatalf("decoded spec does not re-encode: %v", err)
		}
		back, err := DecodeLink(again)
		if err != nil || !reflect.DeepEqual(back, s) {
			t.Fatalf("re-encoded link decodes to %+v, %v; want %+v", back, err, s)
		}
	})
}

// FuzzParseValidate: decoding and validating never panic, and a spec that
// validates resolves, to a spec that an edit link carries.
func FuzzParseValidate(f *testing.F) {
	js, _ := squirrel().MarshalJSON()
	f.Add(js)
	f.Add([]byte(`{"source":"a cat","targets":["a dog","a cow"],"seed":1,"steps":20,"guidance":0,"cross_words":{"dog":[0.1,0.5]},"blend":[{"words":["cat"]},{"words":["cow"],"exclude":["a"]}],"image":"` + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" + `","inversion":"npi"}`))
	f.Add([]byte(`{"source":"","targets":[],"width":3}`))
	f.Add([]byte(`null`))
	d := tinyDefaults("tiny")
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseSpec(data)
		if err != nil {
			return
		}
		if err := s.Validate(d); err != nil {
			if p, ok := err.(Problems); !ok || len(p) == 0 {
				t.Fatalf("Validate returned %T %v, want non-empty Problems", err, err)
			}
			return
		}
		r, err := s.Resolve(d)
		if err != nil {
			t.Fatalf("valid spec does not resolve: %v", err)
		}
		if _, err := EncodeLink(r.Spec()); err != nil {
			t.Fatalf("valid spec has no link: %v", err)
		}
	})
}
