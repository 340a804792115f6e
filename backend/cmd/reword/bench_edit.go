package main

import (
	"context"
	"fmt"
	"image"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"reword/backend/diffusion"
	"reword/models/tiny/eval"
	"reword/models/tiny/scene"
	"reword/shared/edit"
)

func init() {
	registerBench(benchmark{name: "edit", summary: "Prompt-to-Prompt vs baseline on ≥100 edits of the tiny model", run: runBenchEdit})
}

// Kinds of edit in the benchmark set.
const (
	kindColour   = "colour swap"
	kindShape    = "shape swap"
	kindRefine   = "added phrase"
	kindReweight = "reweight"
)

var editKinds = []string{kindColour, kindShape, kindRefine, kindReweight}

// benchEdit is one edit of the set and how to judge it.
type benchEdit struct {
	kind   string
	source string
	target string
	seed   uint64
	// reweight of the colour word (kindReweight only)
	word   string
	factor float64
	// success judges the edited image's analysis.
	success func(res eval.Result, img image.Image) bool
}

// editSet builds perKind edits of each kind, deterministically. Index i of
// each kind goes to the tuning split when even, to the reported split when
// odd, so both splits have every kind and both reweight factors.
func editSet(perKind int, bgs backgroundClassifier) []benchEdit {
	var rng *rand.Rand
	var out []benchEdit
	pick := func() (scene.Colour, scene.Shape, scene.Position) {
		return scene.Colours[rng.IntN(len(scene.Colours))], scene.Shapes[rng.IntN(len(scene.Shapes))], scene.Positions[rng.IntN(len(scene.Positions))]
	}
	caption := func(c scene.Colour, s scene.Shape, p scene.Position) string {
		return scene.NewCaption([]scene.Mention{{Object: scene.Object{Shape: s, Colour: c, Position: p}, NamesColour: true, NamesPosition: true}}, 0, false).Text
	}
	largest := func(r eval.Result) (eval.Object, bool) {
		if len(r.Objects) == 0 {
			return eval.Object{}, false
		}
		return r.Objects[0], true
	}
	for k, kind := range editKinds {
		for i := 0; i < perKind; i++ {
			// Each edit draws from its own stream, so a smaller set is a
			// prefix of a larger one and the splits never share an edit.
			rng = rand.New(rand.NewPCG(2026, uint64(k)<<32|uint64(i)))
			c, s, p := pick()
			e := benchEdit{kind: kind, source: caption(c, s, p), seed: rng.Uint64() % 1_000_000}
			switch kind {
			case kindColour:
				c2 := c
				for c2 == c {
					c2 = scene.Colours[rng.IntN(len(scene.Colours))]
				}
				e.target = caption(c2, s, p)
				e.success = func(r eval.Result, _ image.Image) bool { o, ok := largest(r); return ok && o.Colour == c2 }
			case kindShape:
				s2 := s
				for s2 == s {
					s2 = scene.Shapes[rng.IntN(len(scene.Shapes))]
				}
				e.target = caption(c, s2, p)
				e.success = func(r eval.Result, _ image.Image) bool { o, ok := largest(r); return ok && o.Shape == s2 }
			case kindRefine:
				var bg scene.Background
				for {
					bg = scene.Backgrounds[rng.IntN(len(scene.Backgrounds))]
					if bg.Allows(c) {
						break
					}
				}
				e.target = e.source + " " + bg.Phrase()
				e.success = func(_ eval.Result, img image.Image) bool { return bgs.classify(img) == bg }
			case kindReweight:
				e.target = e.source
				e.word = c.String()
				e.factor = []float64{-1, 2}[(i/2)%2] // both factors in both splits
				if e.factor > 1 {
					e.success = func(r eval.Result, _ image.Image) bool { o, ok := largest(r); return ok && o.Colour == c }
				} else {
					e.success = func(r eval.Result, _ image.Image) bool { o, ok := largest(r); return ok && o.Colour != c }
				}
			}
			out = append(out, e)
		}
	}
	return out
}

// backgroundClassifier names the background of an image by the median
// colour of its 2-pixel border, against the drawn backgrounds'.
type backgroundClassifier struct{ refs [][3]float64 }

func newBackgroundClassifier() backgroundClassifier {
	var b backgroundClassifier
	for _, bg := range scene.Backgrounds {
		b.refs = append(b.refs, borderMedian(scene.Scene{Background: bg}.Render()))
	}
	return b
}

func (b backgroundClassifier) classify(img image.Image) scene.Background {
	m := borderMedian(img)
	best, out := math.Inf(1), scene.Background(0)
	for i, r := range b.refs {
		d := sq(m[0]-r[0]) + sq(m[1]-r[1]) + sq(m[2]-r[2])
		if d < best {
			best, out = d, scene.Backgrounds[i]
		}
	}
	return out
}

func sq(v float64) float64 { return v * v }

func borderMedian(img image.Image) [3]float64 {
	b := img.Bounds()
	var ch [3][]float64
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if x-b.Min.X >= 2 && b.Max.X-x > 2 && y-b.Min.Y >= 2 && b.Max.Y-y > 2 {
				continue
			}
			r, g, bl, _ := img.At(x, y).RGBA()
			ch[0], ch[1], ch[2] = append(ch[0], float64(r>>8)), append(ch[1], float64(g>>8)), append(ch[2], float64(bl>>8))
		}
	}
	var m [3]float64
	for c := range ch {
		sort.Float64s(ch[c])
		m[c] = ch[c][len(ch[c])/2]
	}
	return m
}

// editScore is the evaluation of one edited image against its source.
type editScore struct {
	success  bool
	iou      float64
	shift    float64 // centroid shift of the largest object, px; NaN if either has none
	bgPSNR   float64 // PSNR outside both foregrounds, dB
	hasShift bool
}

func score(e benchEdit, src, res diffusion.Image) (editScore, error) {
	si, ri := src.NRGBA(), res.NRGBA()
	sa, err := eval.Analyze(si)
	if err != nil {
		return editScore{}, err
	}
	ra, err := eval.Analyze(ri)
	if err != nil {
		return editScore{}, err
	}
	s := editScore{success: e.success(ra, ri), iou: eval.IoU(sa.Foreground, ra.Foreground)}
	if len(sa.Objects) > 0 && len(ra.Objects) > 0 {
		a, b := sa.Objects[0], ra.Objects[0]
		s.shift, s.hasShift = math.Hypot(a.CenterX-b.CenterX, a.CenterY-b.CenterY), true
	}
	var sum float64
	n := 0
	for p := range sa.Foreground {
		if sa.Foreground[p] || ra.Foreground[p] {
			continue
		}
		for c := 0; c < 3; c++ {
			d := float64(src.RGB[3*p+c]) - float64(res.RGB[3*p+c])
			sum += d * d
			n++
		}
	}
	s.bgPSNR = psnr(sum, n)
	return s, nil
}

// psnr of a summed squared error over n 8-bit values; identical pixels are
// capped at 60 dB so that means stay finite.
func psnr(sum float64, n int) float64 {
	if n == 0 || sum == 0 {
		return 60
	}
	return math.Min(60, 10*math.Log10(255*255/(sum/float64(n))))
}

// tally accumulates scores of one kind and method.
type tally struct {
	n, ok, shifts    int
	iou, shift, psnr float64
}

func (t *tally) add(s editScore) {
	t.n++
	if s.success {
		t.ok++
	}
	t.iou += s.iou
	t.psnr += s.bgPSNR
	if s.hasShift {
		t.shifts++
		t.shift += s.shift
	}
}

func (t *tally) row() string {
	if t.n == 0 {
		return "–\t–\t–\t–"
	}
	shift := "–"
	if t.shifts > 0 {
		shift = fmt.Sprintf("%.2f", t.shift/float64(t.shifts))
	}
	return fmt.Sprintf("%.0f %%\t%.3f\t%s\t%.1f", 100*float64(t.ok)/float64(t.n), t.iou/float64(t.n), shift, t.psnr/float64(t.n))
}

func runBenchEdit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench edit", "", stderr)
	ef := addEngineFlags(fs)
	perKind := fs.Int("per-kind", 56, "edits of each of the 4 kinds (half tune, half report)")
	split := fs.String("split", "report", "which half to run: report, tune or all")
	steps := fs.Int("steps", 0, "diffusion steps (0 = the model's default)")
	cross := fs.Float64("cross", -1, "cross-replace window for every P2P edit (default: the model's)")
	self := fs.Float64("self", -1, "self-replace window for every P2P edit (default: the model's)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *perKind < 1 || (*split != "report" && *split != "tune" && *split != "all") {
		return usageError("--per-kind must be ≥ 1 and --split one of report, tune, all")
	}
	e, err := ef.load()
	if err != nil {
		return err
	}
	defer e.Close()
	set := editSet(*perKind, newBackgroundClassifier())
	methods := []string{"Prompt-to-Prompt", "baseline"}
	results := map[string]map[string]*tally{}
	for _, m := range methods {
		results[m] = map[string]*tally{}
		for _, k := range editKinds {
			results[m][k] = &tally{}
		}
	}
	start := time.Now()
	ran := 0
	for i, be := range set {
		idx := i % *perKind
		if (*split == "report" && idx%2 == 0) || (*split == "tune" && idx%2 == 1) {
			continue
		}
		seed := be.seed
		spec := edit.Spec{Source: be.source, Targets: []string{be.target}, Seed: &seed}
		if *steps > 0 {
			spec.Steps = steps
		}
		if *cross >= 0 {
			spec.Cross = &edit.Window{End: *cross}
		}
		if *self >= 0 {
			spec.Self = &edit.Window{End: *self}
		}
		if be.word != "" {
			spec.Reweights = map[string]float64{be.word: be.factor}
		}
		for _, m := range methods {
			res, err := e.Edit(ctx, spec, diffusion.RunOptions{Baseline: m == "baseline"}, nil)
			if err != nil {
				return fmt.Errorf("edit %q → %q: %w", be.source, be.target, err)
			}
			s, err := score(be, res.Images[0], res.Images[1])
			if err != nil {
				return err
			}
			results[m][be.kind].add(s)
		}
		ran++
		if ran%10 == 0 {
			fmt.Fprintf(stderr, "%d edits, %v\n", ran, time.Since(start).Round(time.Second))
		}
	}
	d := e.Defaults()
	crossW, selfW := d.Cross.End, d.Self.End
	if *cross >= 0 {
		crossW = *cross
	}
	if *self >= 0 {
		selfW = *self
	}
	fmt.Fprintf(stdout, "Edit benchmark, model %s, split %s: %d edits × 2 methods, cross %.2f, self %.2f, %v\n\n",
		d.Model, *split, ran, crossW, selfW, time.Since(start).Round(time.Second))
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "| kind\t| method\t| edit success\t| mask IoU\t| centroid shift px\t| background PSNR dB\t|")
	// The summary row leaves reweights out: their baseline (the target
	// prompt alone) is the source image itself, which would flatter it.
	const summary = "all but reweight"
	for _, k := range append(slices.Clone(editKinds), summary) {
		for _, m := range methods {
			t := &tally{}
			if k == summary {
				for _, kk := range editKinds {
					if kk == kindReweight {
						continue
					}
					x := results[m][kk]
					t.n, t.ok, t.shifts = t.n+x.n, t.ok+x.ok, t.shifts+x.shifts
					t.iou, t.shift, t.psnr = t.iou+x.iou, t.shift+x.shift, t.psnr+x.psnr
				}
			} else {
				t = results[m][k]
			}
			fmt.Fprintf(tw, "| %s\t| %s\t| %s\t|\n", k, m, strings.ReplaceAll(t.row(), "\t", "\t| "))
		}
	}
	return tw.Flush()
}
