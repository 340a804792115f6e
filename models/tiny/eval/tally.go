package eval

import (
	"fmt"
	"image"
	"io"

	"reword/models/tiny/scene"
)

// Tally counts correct attributes over images of single-object prompts, the
// numbers of the model's quality bar. Position, size and background count
// only where the prompt names them. All covers the object's attributes only
// (colour, shape, and position and size where named), so that it stays
// comparable with the numbers measured before the background was scored.
type Tally struct {
	N, Found, Colour, Shape, Size, Position, All int
	SizeNamed, PositionNamed                     int
	Background, BackgroundNamed                  int
}

// Add analyzes img, judges it against its prompt c and counts the verdict.
func (t *Tally) Add(c scene.Caption, img image.Image) error {
	_, err := t.Judge(c, img)
	return err
}

// Judgement is what Tally.Judge found in one image: the object's verdict
// and, where the prompt names a background, the background the image shows.
type Judgement struct {
	Verdict
	Background       scene.Background
	BackgroundJudged bool // the prompt names a background, so Background was judged
}

// Judge is Add that also returns what it found, for a caller that breaks the
// counts down further (ShapeTable, BackgroundTable).
func (t *Tally) Judge(c scene.Caption, img image.Image) (Judgement, error) {
	r, err := Analyze(img)
	if err != nil {
		return Judgement{}, err
	}
	v, err := CheckSingle(c, r)
	if err != nil {
		return Judgement{}, err
	}
	j := Judgement{Verdict: v}
	b := func(ok bool) int {
		if ok {
			return 1
		}
		return 0
	}
	t.N++
	t.Found += b(v.Found)
	t.Colour += b(v.Colour)
	t.Shape += b(v.Shape)
	t.Position += b(v.Position)
	t.PositionNamed += b(v.NamesPosition)
	t.Size += b(v.Size)
	t.SizeNamed += b(v.NamesSize)
	t.All += b(v.Found && v.Colour && v.Shape && (v.Position || !v.NamesPosition) && (v.Size || !v.NamesSize))
	if c.NamesBackground {
		bg, err := Background(img)
		if err != nil {
			return Judgement{}, err
		}
		t.BackgroundNamed++
		t.Background += b(bg == c.Background)
		j.Background, j.BackgroundJudged = bg, true
	}
	return j, nil
}

// Merge adds u's counts to t (per-seed tallies into a total).
func (t *Tally) Merge(u Tally) {
	t.N += u.N
	t.Found += u.Found
	t.Colour += u.Colour
	t.Shape += u.Shape
	t.Size += u.Size
	t.Position += u.Position
	t.All += u.All
	t.SizeNamed += u.SizeNamed
	t.PositionNamed += u.PositionNamed
	t.Background += u.Background
	t.BackgroundNamed += u.BackgroundNamed
}

// Rates returns the fractions of correct images: colour, shape and all over
// every image, position and size over the images whose prompt names them
// (NaN-free: 0 where none does).
func (t Tally) Rates() (colour, shape, position, size, all, found float64) {
	f := func(a, n int) float64 {
		if n == 0 {
			return 0
		}
		return float64(a) / float64(n)
	}
	return f(t.Colour, t.N), f(t.Shape, t.N), f(t.Position, t.PositionNamed), f(t.Size, t.SizeNamed), f(t.All, t.N), f(t.Found, t.N)
}

// BackgroundRate is the fraction of images whose prompt names the background
// that show it (0 where no prompt does). It is apart from Rates, whose six
// values other tools already read.
func (t Tally) BackgroundRate() float64 {
	if t.BackgroundNamed == 0 {
		return 0
	}
	return float64(t.Background) / float64(t.BackgroundNamed)
}

// PrintHeader writes the column titles PrintRow lines up under.
func PrintHeader(w io.Writer) {
	fmt.Fprintf(w, "%-22s %7s %7s %9s %7s %11s %7s %7s\n", "", "colour", "shape", "position", "size", "background", "all", "found")
}

// PrintRow writes the tally as one table row of percentages ("-" where
// nothing was judged).
func (t Tally) PrintRow(w io.Writer, label string) {
	pct := func(a, n int) string {
		if n == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f%%", 100*float64(a)/float64(n))
	}
	fmt.Fprintf(w, "%-22s %7s %7s %9s %7s %11s %7s %7s\n", label, pct(t.Colour, t.N), pct(t.Shape, t.N),
		pct(t.Position, t.PositionNamed), pct(t.Size, t.SizeNamed), pct(t.Background, t.BackgroundNamed), pct(t.All, t.N), pct(t.Found, t.N))
}
