package eval

import (
	"image"
	"math"
	"math/rand/v2"
	"testing"

	"reword/models/tiny/scene"
)

// drawnOn renders, for background bg, one scene per allowed colour, shape,
// size and position, with random jitter, stripe angle and texture phase.
func drawnOn(rng *rand.Rand, bg scene.Background) []*image.RGBA {
	var out []*image.RGBA
	for _, c := range scene.Colours {
		if !bg.Allows(c) {
			continue
		}
		for _, p := range scene.Positions {
			for _, sz := range scene.Sizes {
				sh := scene.Shapes[rng.IntN(len(scene.Shapes))]
				s := scene.Place(rng, bg, []scene.Object{{Shape: sh, Colour: c, Size: sz, Position: p}})
				out = append(out, s.Render())
			}
		}
	}
	return out
}

// noisy adds Gaussian noise of standard deviation sigma to every channel,
// as generated images carry.
func noisy(rng *rand.Rand, img *image.RGBA, sigma float64) *image.RGBA {
	out := image.NewRGBA(img.Bounds())
	for i := range img.Pix {
		if i%4 == 3 {
			out.Pix[i] = 255
			continue
		}
		v := float64(img.Pix[i]) + sigma*rng.NormFloat64()
		out.Pix[i] = uint8(math.Max(0, math.Min(255, math.Round(v))))
	}
	return out
}

// blurred box-blurs img (3×3, twice), as faint as the model draws stripes
// and grass: their texture drops to a fraction of the drawer's.
func blurred(img *image.RGBA) *image.RGBA {
	for pass := 0; pass < 2; pass++ {
		out := image.NewRGBA(img.Bounds())
		b := img.Bounds()
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				var sum [3]int
				k := 0
				for dy := -1; dy <= 1; dy++ {
					for dx := -1; dx <= 1; dx++ {
						if p := (image.Point{X: x + dx, Y: y + dy}); p.In(b) {
							i := img.PixOffset(p.X, p.Y)
							sum[0], sum[1], sum[2] = sum[0]+int(img.Pix[i]), sum[1]+int(img.Pix[i+1]), sum[2]+int(img.Pix[i+2])
							k++
						}
					}
				}
				i := out.PixOffset(x, y)
				out.Pix[i], out.Pix[i+1], out.Pix[i+2], out.Pix[i+3] = uint8(sum[0]/k), uint8(sum[1]/k), uint8(sum[2]/k), 255
			}
		}
		img = out
	}
	return img
}

// TestBackgroundOfDrawnScenes classifies scenes of every background with
// every object it allows: clean, with noise, and blurred like generated
// images; and the bare backgrounds.
func TestBackgroundOfDrawnScenes(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, bg := range scene.Backgrounds {
		wrong, total := 0, 0
		check := func(img image.Image, what string) {
			total++
			got, err := Background(img)
			if err != nil {
				t.Fatal(err)
			}
			if got != bg {
				wrong++
				if wrong <= 3 {
					t.Errorf("%s on %s: classified %s", what, bg, got)
				}
			}
		}
		for k := 0; k < 8; k++ {
			check(scene.Scene{Background: bg, TexturePhase: rng.Float64(), StripeAngle: rng.Float64() * math.Pi}.Render(), "nothing")
		}
		for _, img := range drawnOn(rng, bg) {
			check(img, "an object")
			check(noisy(rng, img, 8), "an object with noise")
			check(noisy(rng, blurred(img), 2), "an object, blurred")
		}
		if wrong > 0 {
			t.Errorf("%s: %d of %d images misclassified", bg, wrong, total)
		}
	}
}

// TestBackgroundOfTrainingScenes covers two-object scenes, whose objects
// sit nearer the border.
func TestBackgroundOfTrainingScenes(t *testing.T) {
	for i := 0; i < 300; i++ {
		s, _ := scene.TrainingExample(9, i)
		got, err := Background(s.Render())
		if err != nil {
			t.Fatal(err)
		}
		if got != s.Background {
			t.Errorf("training scene %d (%d objects) on %s: classified %s", i, len(s.Objects), s.Background, got)
		}
	}
}

func TestBackgroundRejectsWrongSize(t *testing.T) {
	if _, err := Background(image.NewRGBA(image.Rect(0, 0, 64, 32))); err == nil {
		t.Fatal("Background accepted a 64x32 image")
	}
}

// TestTallyScoresNamedBackground: the background counts only where the
// prompt names it, and only when the image shows that background.
func TestTallyScoresNamedBackground(t *testing.T) {
	obj := scene.Object{Shape: scene.Square, Colour: scene.Red, Size: scene.Big, Position: scene.Left}
	m := scene.Mention{Object: obj, NamesColour: true, NamesPosition: true}
	named := scene.NewCaption([]scene.Mention{m}, scene.Grass, true)
	unnamed := scene.NewCaption([]scene.Mention{m}, scene.Grass, false)
	rng := rand.New(rand.NewPCG(7, 8))
	onGrass := scene.Place(rng, scene.Grass, []scene.Object{obj}).Render()
	onCyan := scene.Place(rng, scene.PlainCyan, []scene.Object{obj}).Render()

	var tl Tally
	for _, c := range []struct {
		caption scene.Caption
		img     image.Image
		judged  bool             // Judge reports a background
		shown   scene.Background // the one it reports
	}{{named, onGrass, true, scene.Grass}, {named, onCyan, true, scene.PlainCyan}, {unnamed, onCyan, false, 0}} {
		j, err := tl.Judge(c.caption, c.img)
		if err != nil {
			t.Fatal(err)
		}
		if j.BackgroundJudged != c.judged || (c.judged && j.Background != c.shown) {
			t.Errorf("%q: judged %v background %v, want %v %v", c.caption.Text, j.BackgroundJudged, j.Background, c.judged, c.shown)
		}
	}
	if tl.BackgroundNamed != 2 || tl.Background != 1 {
		t.Errorf("background %d of %d named, want 1 of 2", tl.Background, tl.BackgroundNamed)
	}
	if r := tl.BackgroundRate(); r != 0.5 {
		t.Errorf("BackgroundRate %v, want 0.5", r)
	}
	if tl.All != 3 {
		t.Errorf("all %d of 3: the background must not change the object verdict", tl.All)
	}
	var sum Tally
	sum.Merge(tl)
	sum.Merge(tl)
	if sum.N != 6 || sum.BackgroundNamed != 4 || sum.Background != 2 || sum.Colour != 2*tl.Colour {
		t.Errorf("merging twice gave %+v from %+v", sum, tl)
	}
}
