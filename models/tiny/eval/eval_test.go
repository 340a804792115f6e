package eval

import (
	"image"
	"math"
	"math/rand/v2"
	"testing"

	"reword/models/tiny/scene"
)

// match pairs each drawn object with the found object nearest its centre.
func match(t *testing.T, s scene.Scene, r Result) []*Object {
	t.Helper()
	out := make([]*Object, len(s.Objects))
	for i, p := range s.Objects {
		best := math.Inf(1)
		for k := range r.Objects {
			o := &r.Objects[k]
			if d := math.Hypot(o.CenterX-p.CenterX, o.CenterY-p.CenterY); d < best && d < p.Radius {
				best, out[i] = d, o
			}
		}
	}
	return out
}

type tally struct{ shape, colour, size, position, found, total int }

func (tl *tally) add(t *testing.T, s scene.Scene, r Result, logFailures int) {
	for i, o := range match(t, s, r) {
		p := s.Objects[i]
		tl.total++
		if o == nil {
			if logFailures > 0 {
				t.Logf("missed %v at (%.1f,%.1f) r=%.1f on %v", p.Object, p.CenterX, p.CenterY, p.Radius, s.Background)
			}
			continue
		}
		tl.found++
		ok := func(b bool) int {
			if b {
				return 1
			}
			return 0
		}
		tl.shape += ok(o.Shape == p.Shape)
		tl.colour += ok(o.Colour == p.Colour)
		tl.size += ok(o.Size == p.Size)
		tl.position += ok(o.Position == p.Position)
		if logFailures > 0 && (o.Shape != p.Shape || o.Colour != p.Colour || o.Size != p.Size || o.Position != p.Position) {
			t.Logf("drawn %v r=%.2f rot=%.2f on %v; found %v %v %v %v r=%.2f hole=%.3f solidity=%.3f threefold=%.2f fourfold=%.2f",
				p.Object, p.Radius, p.Rotation, s.Background, o.Shape, o.Colour, o.Size, o.Position, o.Radius, o.HoleRatio, o.Solidity, o.Threefold, o.Fourfold)
		}
	}
}

func (tl tally) check(t *testing.T, min float64) {
	t.Helper()
	for _, c := range []struct {
		name string
		n    int
	}{{"found", tl.found}, {"shape", tl.shape}, {"colour", tl.colour}, {"size", tl.size}, {"position", tl.position}} {
		acc := float64(c.n) / float64(tl.total)
		t.Logf("%-8s %.4f (%d/%d)", c.name, acc, c.n, tl.total)
		if acc < min {
			t.Errorf("%s accuracy %.4f on drawn scenes, want >= %.2f", c.name, acc, min)
		}
	}
}

// TestDrawnTrainingScenes checks every attribute of every object of drawn
// training scenes (one and two objects, all backgrounds, all jitter) and
// the foreground mask against the drawer's ground truth.
func TestDrawnTrainingScenes(t *testing.T) {
	count := 3000
	if testing.Short() {
		count = 500
	}
	var tl tally
	logged := 0
	var iouSum float64
	minIoU := 1.0
	for i := 0; i < count; i++ {
		s, _ := scene.TrainingExample(7, i)
		r, err := Analyze(s.Render())
		if err != nil {
			t.Fatal(err)
		}
		before := tl
		tl.add(t, s, r, 20-logged)
		if tl.total-before.total != tl.shape-before.shape || tl.found-before.found != tl.total-before.total {
			logged++
		}
		iou := IoU(r.Foreground, s.ForegroundMask())
		iouSum += iou
		minIoU = math.Min(minIoU, iou)
		if len(r.Objects) != len(s.Objects) && logged < 20 {
			logged++
			t.Logf("scene %d: drew %d objects, found %d", i, len(s.Objects), len(r.Objects))
		}
	}
	tl.check(t, 0.99)
	mean := iouSum / float64(count)
	t.Logf("foreground IoU: mean %.4f, min %.4f", mean, minIoU)
	if mean < 0.95 {
		t.Errorf("mean foreground IoU %.4f, want >= 0.95", mean)
	}
}

// TestDrawnEvalPromptScenes checks the evaluator on scenes drawn for the
// held-out evaluation prompts, the population the quality benchmark scores.
func TestDrawnEvalPromptScenes(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var tl tally
	for _, c := range scene.EvalPrompts(400, 1) {
		s, err := scene.SceneFor(rng, c)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Analyze(s.Render())
		if err != nil {
			t.Fatal(err)
		}
		tl.add(t, s, r, 10)
	}
	tl.check(t, 0.99)
}

func TestAnalyzeRejectsWrongSize(t *testing.T) {
	if _, err := Analyze(image.NewRGBA(image.Rect(0, 0, 32, 64))); err == nil {
		t.Fatal("Analyze accepted a 32x64 image")
	}
}

func TestEmptyBackgroundHasNoObjects(t *testing.T) {
	for _, bg := range scene.Backgrounds {
		s := scene.Scene{Background: bg, TexturePhase: 0.3, StripeAngle: 1}
		r, err := Analyze(s.Render())
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Objects) != 0 {
			t.Errorf("%v background alone: found %d objects (first %v %v, area %d)", bg, len(r.Objects), r.Objects[0].Colour, r.Objects[0].Shape, r.Objects[0].Area)
		}
	}
}

// TestRecolourKeepsMask measures the ceiling of bench edit's mask IoU: a
// colour swap that changes nothing but the colour (the same drawn object
// recoloured to another colour its background allows) must give nearly the
// same foreground mask, whatever the two colours' contrast with the
// background, or a perfect edit would read as a moved outline.
func TestRecolourKeepsMask(t *testing.T) {
	var sum, lowest float64 = 0, 1
	n := 0
	for i := 0; n < 500; i++ {
		s, _ := scene.TrainingExample(13, i)
		if len(s.Objects) != 1 {
			continue
		}
		before, err := Analyze(s.Render())
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range scene.Colours {
			if c == s.Objects[0].Colour || !s.Background.Allows(c) {
				continue
			}
			recoloured := s
			recoloured.Objects = []scene.Placed{s.Objects[0]}
			recoloured.Objects[0].Colour = c
			after, err := Analyze(recoloured.Render())
			if err != nil {
				t.Fatal(err)
			}
			iou := IoU(before.Foreground, after.Foreground)
			sum += iou
			lowest = math.Min(lowest, iou)
			n++
		}
	}
	mean := sum / float64(n)
	t.Logf("%d recolourings: mask IoU mean %.3f, min %.3f", n, mean, lowest)
	if mean < 0.98 || lowest < 0.85 {
		t.Errorf("recolouring alone gives mask IoU mean %.3f, min %.3f: want >= 0.98 and >= 0.85", mean, lowest)
	}
}
