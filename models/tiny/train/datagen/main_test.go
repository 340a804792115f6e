package main

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"reword/models/tiny/scene"
	"reword/shared/clip"
)

// The swap groups list every colour word, then every shape word, each as
// the one CLIP token the captions spell it with.
func TestSwapGroups(t *testing.T) {
	tok, err := clip.New()
	if err != nil {
		t.Fatal(err)
	}
	groups, groupWords, err := swapGroups(tok)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 2 || len(groups[0]) != len(scene.Colours) || len(groups[1]) != len(scene.Shapes) {
		t.Fatalf("groups %v: want %d colours and %d shapes", groups, len(scene.Colours), len(scene.Shapes))
	}
	var words []string
	for _, c := range scene.Colours {
		words = append(words, c.String())
	}
	for _, s := range scene.Shapes {
		words = append(words, s.String())
	}
	if got := append(append([]string(nil), groupWords[0]...), groupWords[1]...); strings.Join(got, " ") != strings.Join(words, " ") {
		t.Errorf("group words %v, want %v", got, words)
	}
	ids := append(append([]int32(nil), groups[0]...), groups[1]...)
	for i, w := range words {
		// The word inside a caption is the same token as alone.
		enc := tok.Encode("a " + w + " on grass")
		if enc.IDs[2] != ids[i] || enc.Tokens[2] != w+"</w>" {
			t.Errorf("%q: group id %d, in a caption %d (%s)", w, ids[i], enc.IDs[2], enc.Tokens[2])
		}
	}
}

// With twins, each scene whose caption names a colour gets its colour
// twin (drawn and tokenized like the scene, from the twin's own stream),
// every other scene none; the scenes themselves are those drawn without
// twins.
func TestTwins(t *testing.T) {
	tok, err := clip.New()
	if err != nil {
		t.Fatal(err)
	}
	const n = 60
	plain, err := draw(tok, 3, n, twinSets{})
	if err != nil {
		t.Fatal(err)
	}
	d, err := draw(tok, 3, n, twinSets{colour: true})
	if err != nil {
		t.Fatal(err)
	}
	if string(d.images) != string(plain.images) || fmt.Sprint(d.ids) != fmt.Sprint(plain.ids) {
		t.Fatal("drawing twins changed the scenes")
	}
	twins := 0
	for i := range n {
		s, c := scene.TrainingExample(3, i)
		object := int8(d.twinObjects[i])
		twin, tc, k, ok := scene.ColourTwin(rand.New(rand.NewPCG(3^twinStream, uint64(i))), s, c)
		img := d.twinImages[i*imageBytes : (i+1)*imageBytes]
		ids := d.twinIDs[i*clip.ContextLength : (i+1)*clip.ContextLength]
		if !ok {
			if object != -1 || strings.Trim(string(img), "\x00") != "" {
				t.Errorf("scene %d (%q) has no twin but object %d or pixels", i, c.Text, object)
			}
			continue
		}
		twins++
		want := make([]byte, imageBytes)
		copyRGB(want, twin)
		if int(object) != k || string(img) != string(want) || fmt.Sprint(ids) != fmt.Sprint(tok.Encode(tc.Text).Padded(clip.ContextLength)) {
			t.Errorf("scene %d: twin object %d (want %d), or its pixels or ids are not the twin of %q (%q)", i, object, k, c.Text, tc.Text)
		}
	}
	if twins == 0 {
		t.Error("no scene got a twin")
	}
}

// With background twins, each scene whose caption names no background gets
// its background twin (from the twin's own stream) and the refinement's
// token alignment the engine computes for caption → twin caption: the
// caption's tokens take their own maps, the added phrase's take none. The
// scenes and the colour twins are those drawn without them.
func TestBackgroundTwins(t *testing.T) {
	tok, err := clip.New()
	if err != nil {
		t.Fatal(err)
	}
	const n = 60
	colour, err := draw(tok, 3, n, twinSets{colour: true})
	if err != nil {
		t.Fatal(err)
	}
	d, err := draw(tok, 3, n, twinSets{colour: true, background: true})
	if err != nil {
		t.Fatal(err)
	}
	if string(d.images) != string(colour.images) || string(d.twinImages) != string(colour.twinImages) || string(d.twinObjects) != string(colour.twinObjects) {
		t.Fatal("drawing background twins changed the scenes or the colour twins")
	}
	twins := 0
	for i := range n {
		s, c := scene.TrainingExample(3, i)
		bg := int8(d.bgTwinBackgrounds[i])
		img := d.bgTwinImages[i*imageBytes : (i+1)*imageBytes]
		ids := d.bgTwinIDs[i*clip.ContextLength : (i+1)*clip.ContextLength]
		gather := d.bgTwinGather[i*clip.ContextLength : (i+1)*clip.ContextLength]
		twin, tc, ok := scene.BackgroundTwin(rand.New(rand.NewPCG(3^backgroundTwinStream, uint64(i))), s, c)
		if !ok {
			if bg != -1 || strings.Trim(string(img), "\x00") != "" || strings.Trim(string(gather), "\xff") != "" {
				t.Errorf("scene %d (%q) has no twin but background %d, pixels or an alignment", i, c.Text, bg)
			}
			continue
		}
		twins++
		want := make([]byte, imageBytes)
		copyRGB(want, twin)
		if scene.Background(bg) != twin.Background || string(img) != string(want) || fmt.Sprint(ids) != fmt.Sprint(tok.Encode(tc.Text).Padded(clip.ContextLength)) {
			t.Errorf("scene %d: background %d, its pixels or ids are not the twin of %q (%q)", i, bg, c.Text, tc.Text)
		}
		// The phrase is added at the end: the caption's tokens up to its
		// EOS keep their places, the phrase's take nothing, the twin's EOS
		// takes the caption's, padding takes padding.
		src, tgt := len(tok.Encode(c.Text).IDs), len(tok.Encode(tc.Text).IDs)
		for k := range clip.ContextLength {
			want := k
			switch {
			case k >= src-1 && k < tgt-1:
				want = -1
			case k == tgt-1:
				want = src - 1
			}
			if got := int(int8(gather[k])); got != want {
				t.Fatalf("scene %d, %q → %q: token %d takes %d, want %d", i, c.Text, tc.Text, k, got, want)
			}
		}
	}
	if twins == 0 {
		t.Error("no scene got a background twin")
	}
}
