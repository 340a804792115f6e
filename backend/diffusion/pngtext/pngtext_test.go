package pngtext

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 3, 2))
	img.Set(1, 1, color.NRGBA{10, 20, 30, 255})
	var buf bytes.Buffer
	text := `{"source":"un chat rouge — 猫"}`
	if err := Encode(&buf, img, Entry{SpecKey, text}, Entry{MeaningKey, "5"}); err != nil {
		t.Fatal(err)
	}
	back, err := png.Decode(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatalf("standard decoder rejects the file: %v", err)
	}
	if c := color.NRGBAModel.Convert(back.At(1, 1)).(color.NRGBA); c != (color.NRGBA{10, 20, 30, 255}) {
		t.Fatalf("pixel = %v", c)
	}
	got, ok, err := Read(bytes.NewReader(buf.Bytes()), SpecKey)
	if err != nil || !ok || got != text {
		t.Fatalf("Read = %q, %v, %v", got, ok, err)
	}
	if got, ok, err := Read(bytes.NewReader(buf.Bytes()), MeaningKey); err != nil || !ok || got != "5" {
		t.Fatalf("Read of the second entry = %q, %v, %v", got, ok, err)
	}
	if _, ok, _ := Read(bytes.NewReader(buf.Bytes()), "other"); ok {
		t.Fatal("found a keyword that is not there")
	}
	if err := Encode(&buf, img, Entry{SpecKey, text}, Entry{"", text}); err == nil {
		t.Fatal("empty keyword accepted")
	}
	if _, _, err := Read(bytes.NewReader([]byte("GIF89a")), SpecKey); err == nil {
		t.Fatal("non-PNG accepted")
	}
}
