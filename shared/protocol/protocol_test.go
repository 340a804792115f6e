package protocol

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"reword/shared/edit"
)

func TestRoundTrip(t *testing.T) {
	in := Hello{Server: "test", Protocol: Version, Model: ModelInfo{ID: "tiny", Ready: false, Missing: []string{"unet/model.onnx"}}}
	b, err := Encode(TypeHello, "r1", in)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := m.Payload.(*Hello)
	if !ok || m.ID != "r1" || got.Server != "test" || got.Model.Missing[0] != "unet/model.onnx" {
		t.Fatalf("decoded %+v %+v", m.Envelope, m.Payload)
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, c := range []struct {
		name, msg string
		code      ErrorCode
		field     string
	}{
		{"not json", `{`, CodeBadMessage, ""},
		{"trailing", `{"v":1,"type":"error","data":{"code":"x","message":"m"}} {}`, CodeBadMessage, ""},
		{"unknown envelope field", `{"v":1,"type":"error","data":{},"extra":1}`, CodeBadMessage, ""},
		{"version", `{"v":2,"type":"error","data":{}}`, CodeBadVersion, "v"},
		{"unknown type", `{"v":1,"type":"launch","data":{}}`, CodeUnknownType, "type"},
		{"unknown data field", `{"v":1,"type":"error","data":{"code":"x","message":"m","why":1}}`, CodeBadMessage, "data"},
		{"no data", `{"v":1,"type":"error"}`, CodeBadMessage, "data"},
		{"huge", `{"v":1,"type":"error","data":{"message":"` + strings.Repeat("x", MaxMessageBytes) + `"}}`, CodeTooLarge, ""},
	} {
		_, err := Decode([]byte(c.msg))
		var pe *Error
		if !errors.As(err, &pe) || pe.Code != c.code || pe.Field != c.field {
			t.Errorf("%s: err = %v, want code %s field %q", c.name, err, c.code, c.field)
		}
	}
}

// TestDecodeServerIgnoresNewFields: an editor built before a server added
// fields (in the envelope or a payload) still reads its messages, while a
// client's message with an unknown field stays refused (TestDecodeRejects).
func TestDecodeServerIgnoresNewFields(t *testing.T) {
	msg := `{"v":1,"type":"hello","id":"r1","trace":"x","data":{"server":"newer","protocol":1,"model":{"id":"tiny","ready":true},"future_default":{"a":[1,2]}}}`
	m, err := DecodeServer([]byte(msg))
	if err != nil {
		t.Fatalf("DecodeServer: %v", err)
	}
	if h, ok := m.Payload.(*Hello); !ok || h.Server != "newer" || h.Model.ID != "tiny" || m.ID != "r1" {
		t.Fatalf("decoded %+v %+v", m.Envelope, m.Payload)
	}
	if _, err := Decode([]byte(msg)); err == nil {
		t.Error("Decode (a client's message) accepted unknown fields")
	}
	for _, bad := range []string{
		`{"v":1,"type":"hello","data":{"server":"x"}} {}`,
		`{"v":2,"type":"hello","data":{"server":"x"}}`,
		`{"v":1,"type":"launch","data":{}}`,
		`{"v":1,"type":"hello","data":{"server":1}}`,
	} {
		if _, err := DecodeServer([]byte(bad)); err == nil {
			t.Errorf("DecodeServer accepted %s", bad)
		}
	}
}

func TestEncodeUnknownType(t *testing.T) {
	if _, err := Encode("nope", "", struct{}{}); err == nil {
		t.Error("no error for an unknown type")
	}
}

// FuzzDecode checks that no input panics and that every accepted message
// re-encodes to a message that decodes to the same envelope.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"v":1,"type":"hello","id":"a","data":{"server":"s","protocol":1,"model":{"id":"tiny","ready":true}}}`))
	f.Add([]byte(`{"v":1,"type":"error","data":{"code":"bad_message","message":"m","field":"x"}}`))
	f.Add([]byte(`{"v":1,"type":"zzz","data":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			var pe *Error
			if !errors.As(err, &pe) || pe.Code == "" || pe.Message == "" {
				t.Fatalf("error without code or message: %v", err)
			}
			return
		}
		again, err := Encode(m.Type, m.ID, m.Payload)
		if err != nil {
			t.Fatalf("re-encoding an accepted message: %v", err)
		}
		m2, err := Decode(again)
		if err != nil {
			t.Fatalf("re-encoded message rejected: %v\n%s", err, again)
		}
		if m2.Type != m.Type || m2.ID != m.ID {
			t.Fatalf("round trip changed the envelope: %+v vs %+v", m.Envelope, m2.Envelope)
		}
	})
}

func TestPreviewRoundTrip(t *testing.T) {
	p := Preview{ID: "req-1", Format: FormatRGBA, Row: 2, Step: 7, Total: 50, Width: 2, Height: 1, Pixels: []byte{1, 2, 3, 4, 5, 6, 7, 8}}
	b, err := EncodePreview(p)
	if err != nil {
		t.Fatal(err)
	}
	q, err := DecodePreview(b)
	if err != nil {
		t.Fatal(err)
	}
	if q.ID != p.ID || q.Row != 2 || q.Step != 7 || q.Total != 50 || q.Width != 2 || string(q.Pixels) != string(p.Pixels) {
		t.Fatalf("round trip: %+v", q)
	}
	bad := p
	bad.Pixels = bad.Pixels[:7]
	if _, err := EncodePreview(bad); err == nil {
		t.Error("short RGBA accepted")
	}
	if _, err := DecodePreview(b[:10]); err == nil {
		t.Error("truncated frame accepted")
	}
}

func FuzzDecodePreview(f *testing.F) {
	b, _ := EncodePreview(Preview{ID: "x", Format: FormatPNG, Row: 1, Step: 1, Total: 1, Width: 1, Height: 1, Pixels: []byte("png")})
	f.Add(b)
	f.Add([]byte("RWP1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := DecodePreview(b)
		if err != nil {
			return
		}
		again, err := EncodePreview(p)
		if err != nil {
			t.Fatalf("accepted frame does not re-encode: %v", err)
		}
		if string(again) != string(b) {
			t.Fatalf("re-encoded frame differs")
		}
	})
}

func TestFromClient(t *testing.T) {
	if !TypeRun.FromClient() || !TypeCancel.FromClient() || TypeHello.FromClient() || TypeResult.FromClient() {
		t.Error("FromClient is wrong")
	}
}

// A result with heat maps of long prompts is larger than a client message
// may be: clients decode it with DecodeServer, which allows it, and the
// maps keep their size.
func TestLargeResultDecodesAsServerMessage(t *testing.T) {
	res := Result{Images: []Image{{Row: 0, Hash: "h", URL: "/images/h.png", Width: 64, Height: 64}}}
	for row := 0; row < 5; row++ {
		for tok := 1; tok <= 75; tok++ {
			res.HeatMaps = append(res.HeatMaps, HeatMap{Row: row, Token: tok, Text: "circle</w>", Width: 16, Height: 16, Values: make([]byte, 256)})
		}
	}
	b, err := Encode(TypeResult, "r", res)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) <= MaxMessageBytes || len(b) > MaxServerMessageBytes {
		t.Fatalf("the result is %d bytes; the test needs one between the client and server limits", len(b))
	}
	var pe *Error
	if _, err := Decode(b); !errors.As(err, &pe) || pe.Code != CodeTooLarge {
		t.Errorf("Decode of a %d-byte message: %v, want too_large", len(b), err)
	}
	m, err := DecodeServer(b)
	if err != nil {
		t.Fatal(err)
	}
	got := m.Payload.(*Result)
	if len(got.HeatMaps) != 375 || got.HeatMaps[374].Width != 16 || got.HeatMaps[374].Height != 16 || len(got.HeatMaps[374].Values) != 256 {
		t.Errorf("decoded %d heat maps, the last %dx%d with %d values", len(got.HeatMaps), got.HeatMaps[374].Width, got.HeatMaps[374].Height, len(got.HeatMaps[374].Values))
	}
	if _, err := DecodeServer(make([]byte, MaxServerMessageBytes+1)); !errors.As(err, &pe) || pe.Code != CodeTooLarge {
		t.Errorf("DecodeServer over its limit: %v", err)
	}
}

// The defaults a hello carries convert back to the ones the server
// validates with, so that a client checks specs by the same rules.
func TestModelDefaultsRoundTrip(t *testing.T) {
	d := edit.Defaults{Model: "tiny", Sizes: []edit.Size{{Width: 64, Height: 64}, {Width: 32, Height: 48}}, Schedulers: []string{"ddim", "dpmpp-2m"},
		Steps: 50, Guidance: 7.5, Cross: edit.Fraction(0.8), Self: edit.Window{Start: 0.1, End: 0.4}, Norm: edit.Fraction(0.4)}
	if got := DefaultsOf(d).SpecDefaults("tiny"); !reflect.DeepEqual(got, d) {
		t.Errorf("round trip: %+v, want %+v", got, d)
	}
	// The self-attention layers survive the JSON form too.
	d.SelfLayers = []edit.SelfLayerGroup{{Grid: edit.Size{Width: 4, Height: 4}, Layers: 4}, {Grid: edit.Size{Width: 16, Height: 8}, Layers: 3}}
	d.SelfMaxTokens, d.PhotoSelfMaxTokens = 128, 1024
	js, err := json.Marshal(DefaultsOf(d))
	if err != nil || !strings.Contains(string(js), `"self_layers":[{"grid":[4,4],"layers":4},{"grid":[16,8],"layers":3}],"self_max_tokens":128,"photo_self_max_tokens":1024`) {
		t.Fatalf("JSON form %s, %v", js, err)
	}
	var back ModelDefaults
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if got := back.SpecDefaults("tiny"); !reflect.DeepEqual(got, d) {
		t.Errorf("round trip with self layers: %+v, want %+v", got, d)
	}
	// So does the changed words' cross window, and a server that has
	// none leaves it out.
	changed := edit.Fraction(0.4)
	d.CrossChanged = &changed
	if js, err = json.Marshal(DefaultsOf(d)); err != nil || !strings.Contains(string(js), `"cross_changed":0.4`) {
		t.Fatalf("JSON form %s, %v", js, err)
	}
	back = ModelDefaults{}
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if got := back.SpecDefaults("tiny"); !reflect.DeepEqual(got, d) {
		t.Errorf("round trip with cross_changed: %+v, want %+v", got, d)
	}
	// And the blend on the changed words, left out where the model has
	// none.
	if strings.Contains(string(js), "blend_changed") {
		t.Errorf("JSON form %s states blend_changed for a model without it", js)
	}
	if strings.Contains(string(js), "blend_reweighted") {
		t.Errorf("JSON form %s states blend_reweighted for a model without it", js)
	}
	d.BlendChanged, d.BlendReweighted = true, true
	d.DecodeNorm = edit.DecodeNormSwaps
	if js, err = json.Marshal(DefaultsOf(d)); err != nil || !strings.Contains(string(js), `"blend_changed":true`) ||
		!strings.Contains(string(js), `"blend_reweighted":true`) {
		t.Fatalf("JSON form %s, %v", js, err)
	}
	back = ModelDefaults{}
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	if got := back.SpecDefaults("tiny"); !reflect.DeepEqual(got, d) {
		t.Errorf("round trip with blend_changed: %+v, want %+v", got, d)
	}
	// A server before the norm default says nothing of it: never.
	var older ModelDefaults
	if err := json.Unmarshal([]byte(`{"steps":50,"guidance":7.5,"sizes":[[64,64]],"schedulers":["ddim"],"cross":0.8,"self":0.4}`), &older); err != nil {
		t.Fatal(err)
	}
	if got := older.SpecDefaults("tiny").Norm; got != (edit.Window{}) {
		t.Errorf("a hello without norm: default norm %+v, want never", got)
	}
	if got := older.SpecDefaults("tiny").CrossChanged; got != nil {
		t.Errorf("a hello without cross_changed: default %+v, want none (cross for every token)", got)
	}
}

// tinyDefaults are the defaults of a 64×64 model like Reword's tiny one.
func tinyDefaults() edit.Defaults {
	return edit.Defaults{Model: "tiny", Sizes: []edit.Size{{Width: 64, Height: 64}}, Schedulers: []string{"ddim"},
		Steps: 50, Guidance: 7.5, Cross: edit.Fraction(0.8), Self: edit.Fraction(0.4)}
}

// resolveBothWays resolves a spec's JSON as a link carries it
// (edit.ParseSpec) and as the socket does (inside a run message), the two
// ways a server receives a spec.
func resolveBothWays(spec []byte) (link, socket edit.Resolved, linkErr, socketErr error, ok bool) {
	parsed, err := edit.ParseSpec(spec)
	if err != nil {
		return
	}
	m, err := Decode([]byte(`{"v":1,"type":"run","id":"r","data":{"spec":` + string(spec) + `}}`))
	if err != nil {
		return
	}
	d := tinyDefaults()
	link, linkErr = parsed.Resolve(d)
	socket, socketErr = m.Payload.(*Run).Spec.Resolve(d)
	return link, socket, linkErr, socketErr, true
}

// TestSocketResolvesSpecsAsLinksDo: a spec means the same whether it
// arrives in a link or over the socket. ParseSpec drops trailing auto
// kinds and empty blend entries; the socket's decoding does not, and its
// spec was once refused for "kinds has 2 entries for 1 edited prompts".
func TestSocketResolvesSpecsAsLinksDo(t *testing.T) {
	spec := []byte(`{"source":"a red cat","seed":1,"targets":["a red dog"],"kinds":["auto","auto"],"blend":[{"words":["cat"]},{}]}`)
	link, socket, linkErr, socketErr, ok := resolveBothWays(spec)
	if !ok {
		t.Fatal("the spec does not decode")
	}
	if linkErr != nil || socketErr != nil {
		t.Fatalf("link: %v; socket: %v", linkErr, socketErr)
	}
	if !reflect.DeepEqual(link, socket) {
		t.Errorf("socket resolved %+v, link %+v", socket, link)
	}
}

// FuzzResolveBothWays: a spec resolves alike, to the same values or the
// same problems, over the socket and in a link.
func FuzzResolveBothWays(f *testing.F) {
	f.Add([]byte(`{"source":"a red cat","seed":1,"targets":["a red dog"],"kinds":["auto","auto"],"blend":[{"words":["cat"]},{}]}`))
	f.Add([]byte(`{"source":"a cat","seed":1,"targets":["a dog"],"kinds":["","replace",""],"blend":[{},{"words":[]},{"exclude":[]}]}`))
	f.Fuzz(func(t *testing.T, spec []byte) {
		link, socket, linkErr, socketErr, ok := resolveBothWays(spec)
		if ok && (!reflect.DeepEqual(link, socket) || !reflect.DeepEqual(linkErr, socketErr)) {
			t.Fatalf("link resolves to %+v, %v; socket to %+v, %v", link, linkErr, socket, socketErr)
		}
	})
}
