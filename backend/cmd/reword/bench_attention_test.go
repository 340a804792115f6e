package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"

	"reword/backend/diffusion"
	"reword/models/tiny/eval"
	"reword/models/tiny/scene"
	"reword/models/tiny/tinytest"
	"reword/shared/clip"
)

// The measurement on real generations of the tiny model: every share lies in
// [0, 1]; the area is the region's pixel fraction as the evaluator's masks
// give it; a uniform map's share is exactly that area; and a word's mass
// inside a region and outside it add up to all of it.
func TestAttentionSharesOfARealGeneration(t *testing.T) {
	e, err := diffusion.Load(tinytest.Private(t), diffusion.Options{Instrument: true, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	prompts := attentionPrompts(1, 1, false, true)
	if len(prompts) != 2 || len(prompts[0].Mentions) != 1 || len(prompts[1].Mentions) != 2 || !prompts[0].NamesBackground {
		t.Fatalf("prompts %+v; want one single-object and one two-object caption naming the background", prompts)
	}
	measured := 0
	for _, c := range prompts {
		res, err := e.Generate(context.Background(), diffusion.GenerateRequest{Prompt: c.Text, Seed: 1, Steps: 20},
			diffusion.RunOptions{AllResolutions: true, NoSourceCache: true}, nil)
		if err != nil {
			t.Fatal(err)
		}
		found, err := eval.Analyze(res.Images[0].NRGBA())
		if err != nil {
			t.Fatal(err)
		}
		enc := e.Tokenizer().Encode(c.Text)
		shares, splits, err := measureAttention(c, enc, res.HeatMaps, found)
		if errors.Is(err, errTooFewObjects) && len(c.Mentions) > 1 {
			t.Logf("%q: %d objects found, not measured", c.Text, len(found.Objects))
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", c.Text, err)
		}
		measured++
		match, _ := matchObjects(c.Mentions, found.Objects)
		background := 1 - float64(count(found.Foreground))/float64(len(found.Foreground))
		kinds := map[int]map[string]bool{}
		for _, s := range shares {
			if s.Share < 0 || s.Share > 1 || math.IsNaN(s.Share) {
				t.Errorf("%q: %s %q at %dx%d has share %v", c.Text, s.Kind, s.Word, s.Width, s.Height, s.Share)
			}
			want := background
			if s.Kind != attnBackground && s.Kind != attnPhrase {
				want = math.NaN()
				for i, m := range c.Mentions {
					if objectWordKind(m, s.Word) == s.Kind {
						want = float64(found.Objects[match[i]].Area) / float64(scene.ImageSize*scene.ImageSize)
					}
				}
			}
			if math.Abs(s.Area-want) > 1e-12 {
				t.Errorf("%q: %s %q has area %v, want %v", c.Text, s.Kind, s.Word, s.Area, want)
			}
			if kinds[s.Stride] == nil {
				kinds[s.Stride] = map[string]bool{}
			}
			kinds[s.Stride][s.Kind] = true
		}
		for _, stride := range []int{1, 2, 4} {
			for _, k := range []string{attnColour, attnShape, attnPosition, attnBackground, attnPhrase} {
				if !kinds[stride][k] {
					t.Errorf("%q: no %s word measured at stride %d", c.Text, k, stride)
				}
			}
		}
		checkSplits(t, c.Text, splits)

		// Controlled maps on the real masks.
		mask := found.Objects[match[0]].Mask
		outside := make([]bool, len(mask))
		for p, in := range mask {
			outside[p] = !in
		}
		for _, hm := range res.HeatMaps {
			tok := []int{2} // the first word after "a"
			in, area, err := massShare(hm, tok, mask)
			if err != nil {
				t.Fatal(err)
			}
			out, rest, err := massShare(hm, tok, outside)
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(in+out-1) > 1e-9 || math.Abs(area+rest-1) > 1e-12 {
				t.Errorf("%dx%d: inside %v + outside %v, area %v + %v; want 1 each", hm.Width, hm.Height, in, out, area, rest)
			}
			uniform := hm
			uniform.Maps = make([][]float32, len(hm.Maps))
			for k := range uniform.Maps {
				uniform.Maps[k] = make([]float32, hm.Width*hm.Height)
				for q := range uniform.Maps[k] {
					uniform.Maps[k][q] = 0.25
				}
			}
			share, a, err := massShare(uniform, tok, mask)
			if err != nil || math.Abs(share-a) > 1e-12 {
				t.Errorf("%dx%d uniform map: share %v, area %v, %v", hm.Width, hm.Height, share, a, err)
			}
			if at, err := meanOver(uniform, tok, outside); err != nil || math.Abs(at-0.25) > 1e-12 {
				t.Errorf("%dx%d uniform map: %v of a background pixel's attention, %v; want 0.25", hm.Width, hm.Height, at, err)
			}
			// A background pixel's mean share, times the background's
			// pixels in cells, is the mass outside the object.
			at, err := meanOver(hm, tok, outside)
			if err != nil {
				t.Fatal(err)
			}
			var mass float64
			for _, v := range hm.Maps[tok[0]] {
				mass += float64(v)
			}
			cell := float64(scene.ImageSize*scene.ImageSize) / float64(hm.Width*hm.Height)
			if got := at * float64(count(outside)) / cell; math.Abs(got-out*mass) > 1e-6*mass {
				t.Errorf("%dx%d: mean share at background pixels gives mass %v outside, massShare %v", hm.Width, hm.Height, got, out*mass)
			}
			all := make([]int, len(hm.Maps))
			for k := range all {
				all[k] = k
			}
			if sum, err := meanOver(hm, all, outside); err != nil || sum > 1+1e-5 || sum <= 0 {
				t.Errorf("%dx%d: every token's share of a background pixel sums to %v, %v; want (0, 1]", hm.Width, hm.Height, sum, err)
			}
		}
	}
	if measured == 0 {
		t.Fatal("no generation was measured")
	}
}

// checkSplits checks one image's background-pixel splits: one per
// resolution, every share in [0, 1], adding up to 1 (the padding is what the
// prompt's tokens leave, so a token counted twice or never shows here).
func checkSplits(t *testing.T, prompt string, splits []pixelSplit) {
	t.Helper()
	if len(splits) != 3 {
		t.Fatalf("%q: %d background-pixel splits, want one per resolution (3)", prompt, len(splits))
	}
	for _, sp := range splits {
		sum := 0.0
		for _, k := range pixelKinds {
			v := sp.Shares[k]
			if v < 0 || v > 1 || math.IsNaN(v) {
				t.Errorf("%q %dx%d: %s takes %v of a background pixel", prompt, sp.Width, sp.Height, k, v)
			}
			sum += v
		}
		if math.Abs(sum-1) > 1e-5 {
			t.Errorf("%q %dx%d: the groups add up to %v, want 1", prompt, sp.Width, sp.Height, sum)
		}
	}
}

// On maps that give each of the 77 key positions the same weight, every
// group of a two-object caption takes its token count over 77: the
// counts are written out from the caption's words, not from the code.
func TestBackgroundPixelSplitOnUniformMaps(t *testing.T) {
	tok, err := clip.Default()
	if err != nil {
		t.Fatal(err)
	}
	c := scene.NewCaption([]scene.Mention{
		{Object: scene.Object{Shape: scene.Circle, Colour: scene.Red, Size: scene.Small, Position: scene.Left}, NamesColour: true, NamesPosition: true},
		{Object: scene.Object{Shape: scene.Square, Colour: scene.Blue, Size: scene.Small, Position: scene.Right}, NamesColour: true, NamesPosition: true},
	}, scene.PlainGray, true)
	const text = "a red circle on the left and a blue square on the right on a gray background"
	if c.Text != text {
		t.Fatalf("caption %q, want %q", c.Text, text)
	}
	enc := tok.Encode(c.Text)
	if len(enc.IDs) != 19 { // BOS, 17 one-token words, EOS
		t.Fatalf("%d tokens %v, want 19", len(enc.IDs), enc.Tokens)
	}
	// Two found objects where the caption puts them, as the evaluator reports them.
	const n = scene.ImageSize
	found := eval.Result{Foreground: make([]bool, n*n)}
	for _, m := range c.Mentions {
		o := eval.Object{Shape: m.Shape, Colour: m.Colour, Size: m.Size, Position: m.Position, Mask: make([]bool, n*n)}
		o.CenterX, o.CenterY = m.Position.Anchor()
		for y := int(o.CenterY) - 4; y < int(o.CenterY)+4; y++ {
			for x := int(o.CenterX) - 4; x < int(o.CenterX)+4; x++ {
				o.Mask[y*n+x], found.Foreground[y*n+x] = true, true
				o.Area++
			}
		}
		found.Objects = append(found.Objects, o)
	}
	var maps []diffusion.HeatMap
	for _, stride := range []int{1, 2, 4} {
		side := 16 / stride
		hm := diffusion.HeatMap{Prompt: c.Text, Tokens: enc.Tokens, Stride: stride, Width: side, Height: side}
		for range enc.Tokens {
			m := make([]float32, side*side)
			for q := range m {
				m[q] = 1.0 / 77
			}
			hm.Maps = append(hm.Maps, m)
		}
		maps = append(maps, hm)
	}
	_, splits, err := measureAttention(c, enc, maps, found)
	if err != nil {
		t.Fatal(err)
	}
	checkSplits(t, c.Text, splits)
	want := map[string]float64{ // token counts
		attnColour: 2, attnShape: 2, attnSize: 0, attnPosition: 2, attnBackground: 1,
		attnPhrase:     3, // on, a, background
		attnOtherWords: 7, // a, on, the, and, a, on, the
		attnStart:      1, attnEnd: 1,
		attnPadding: 77 - 19,
	}
	for _, sp := range splits {
		for k, v := range want {
			if math.Abs(sp.Shares[k]-v/77) > 1e-6 {
				t.Errorf("%dx%d: %s takes %v of a background pixel, want %v/77", sp.Width, sp.Height, k, sp.Shares[k], v)
			}
		}
	}

	// An image with no background pixel has nothing to split.
	for p := range found.Foreground {
		found.Foreground[p] = true
	}
	if _, splits, err := measureAttention(c, enc, maps, found); err != nil || len(splits) != 0 {
		t.Errorf("no background: %d splits, %v; want none", len(splits), err)
	}
	// A prompt whose tokens take more than a whole softmax row is refused.
	for q := range maps[0].Maps[0] {
		maps[0].Maps[0][q] = 1
	}
	for p := range found.Foreground {
		found.Foreground[p] = false
	}
	for _, o := range found.Objects {
		for p, in := range o.Mask {
			found.Foreground[p] = found.Foreground[p] || in
		}
	}
	if _, _, err := measureAttention(c, enc, maps, found); err == nil || !strings.Contains(err.Error(), "a softmax row adds up to 1") {
		t.Errorf("maps adding up to more than 1: %v", err)
	}
}

func count(v []bool) int {
	n := 0
	for _, b := range v {
		if b {
			n++
		}
	}
	return n
}

func TestMassShareRefusesBadInput(t *testing.T) {
	mask := make([]bool, scene.ImageSize*scene.ImageSize)
	hm := diffusion.HeatMap{Width: 3, Height: 3, Maps: [][]float32{make([]float32, 9)}}
	if _, _, err := massShare(hm, []int{0}, mask); err == nil || !strings.Contains(err.Error(), "does not tile") {
		t.Errorf("3x3 grid: %v", err)
	}
	hm = diffusion.HeatMap{Width: 4, Height: 4, Maps: [][]float32{make([]float32, 16)}}
	if _, _, err := massShare(hm, []int{0}, mask); err == nil || !strings.Contains(err.Error(), "no attention") {
		t.Errorf("zero map: %v", err)
	}
	if _, _, err := massShare(hm, []int{5}, mask); err == nil || !strings.Contains(err.Error(), "token 5") {
		t.Errorf("missing token: %v", err)
	}
	if _, _, err := massShare(hm, []int{0}, mask[:10]); err == nil || !strings.Contains(err.Error(), "mask has 10 pixels") {
		t.Errorf("short mask: %v", err)
	}
	if _, err := meanOver(hm, []int{5}, mask); err == nil || !strings.Contains(err.Error(), "token 5") {
		t.Errorf("meanOver, missing token: %v", err)
	}
	if _, err := meanOver(hm, []int{0}, mask[:10]); err == nil || !strings.Contains(err.Error(), "mask has 10 pixels") {
		t.Errorf("meanOver, short mask: %v", err)
	}
	if _, ok := matchObjects(make([]scene.Mention, 2), make([]eval.Object, 1)); ok {
		t.Error("two mentions matched to one object")
	}
}

func TestBenchAttentionCommand(t *testing.T) {
	dir := tinytest.Private(t)
	var out, errb bytes.Buffer
	if code := run([]string{"bench", "attention", "-model", dir, "-prompts", "1", "-pairs", "0", "-steps", "8", "-threads", "1", "-json"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errb.String())
	}
	var rep attentionReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	if rep.Images != 1 || rep.HeatMapGrid != [2]int{16, 16} || rep.LocalBlendGrid != [2]int{4, 4} || len(rep.Rows) == 0 {
		t.Fatalf("report %+v", rep)
	}
	resolutions := map[string]bool{}
	for _, r := range rep.Rows {
		resolutions[r.Resolution] = true
		if r.N < 1 || r.Share < 0 || r.Share > 1 || r.Area <= 0 || r.Area >= 1 || r.Above < 0 || r.Above > 1 {
			t.Errorf("row %+v", r)
		}
	}
	if len(resolutions) != 3 || !resolutions["16x16"] || !resolutions["8x8"] || !resolutions["4x4"] {
		t.Errorf("resolutions %v, want 16x16, 8x8 and 4x4", resolutions)
	}
	if len(rep.BackgroundPixel) != 3 || rep.BackgroundPixel[0].Resolution != "16x16" || rep.BackgroundPixel[2].Resolution != "4x4" {
		t.Fatalf("background-pixel rows %+v, want 16x16, 8x8, 4x4", rep.BackgroundPixel)
	}
	for _, r := range rep.BackgroundPixel {
		sum := 0.0
		for _, k := range pixelKinds {
			sum += r.Shares[k]
		}
		if r.Images != 1 || math.Abs(sum-1) > 1e-5 {
			t.Errorf("background-pixel row %+v: %d images, groups adding up to %v; want 1 image, 1", r, r.Images, sum)
		}
	}
	var table bytes.Buffer
	if err := rep.writeTable(&table); err != nil || !strings.Contains(table.String(), "a background pixel's attention, split over every key position") ||
		!strings.Contains(table.String(), "PADDING") {
		t.Errorf("table: %v\n%s", err, table.String())
	}
	for _, args := range [][]string{{"-prompts", "0", "-pairs", "0"}, {"-steps", "0"}, {"extra"}} {
		errb.Reset()
		if code := run(append([]string{"bench", "attention", "-model", dir}, args...), &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, stderr %s", args, code, errb.String())
		}
	}
}
