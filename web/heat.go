package web

import (
	"fmt"
	"math"

	"reword/shared/protocol"
)

// wordHeat averages the heat maps of a word's tokens in one row of a result,
// the map the editor overlays when the word is hovered. It returns nil when
// the result has no map for any of the tokens (heat maps not requested, or a
// word past the context).
func wordHeat(maps []protocol.HeatMap, row int, tokens []int) (w, h int, values []byte) {
	var sum []int
	n := 0
	for _, m := range maps {
		if m.Row != row || !containsInt(tokens, m.Token) || len(m.Values) != m.Width*m.Height {
			continue
		}
		if sum == nil {
			w, h, sum = m.Width, m.Height, make([]int, len(m.Values))
		}
		if m.Width != w || m.Height != h {
			continue
		}
		for i, v := range m.Values {
			sum[i] += int(v)
		}
		n++
	}
	if n == 0 {
		return 0, 0, nil
	}
	values = make([]byte, len(sum))
	for i, s := range sum {
		values[i] = byte(s / n)
	}
	return w, h, values
}

// heatOverlay is one row's part of a word's heat map view: the word (or
// its counterpart) whose map that row's image shows.
type heatOverlay struct {
	Row    int
	Word   string
	Tokens []int
}

// heatOverlays places a word's attention side by side with its
// counterpart's: a target word's map on its edit's image and the source
// word it stands for (kept or swapped) on the source image; a source
// word's map on the source image and, on each edit's image, the word that
// stands for it there. unchanged(row) reports whether the row's prompt is
// still the one that ran (maps belong to the prompts as run; row 0 is the
// source); rows whose prompt changed are left out.
func heatOverlays(comparisons []Comparison, w wordRef, unchanged func(row int) bool) []heatOverlay {
	if len(comparisons) == 0 || !unchanged(w.Prompt+1) {
		return nil
	}
	source := comparisons[0].Source
	var out []heatOverlay
	add := func(row int, pw PromptWord) {
		if unchanged(row) && len(pw.Tokens) > 0 {
			out = append(out, heatOverlay{Row: row, Word: pw.Text, Tokens: pw.Tokens})
		}
	}
	if w.Prompt == sourcePrompt {
		if w.Index < 0 || w.Index >= len(source) {
			return nil
		}
		add(0, source[w.Index])
		for e, c := range comparisons {
			for _, tw := range c.Target {
				if tw.Counterpart == w.Index {
					add(e+1, tw)
					break
				}
			}
		}
		return out
	}
	if w.Prompt >= len(comparisons) || w.Index < 0 || w.Index >= len(comparisons[w.Prompt].Target) {
		return nil
	}
	tw := comparisons[w.Prompt].Target[w.Index]
	add(w.Prompt+1, tw)
	if cp := tw.Counterpart; cp >= 0 && cp < len(source) {
		add(0, source[cp])
	}
	return out
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// heatStops is the overlay's colour scale, from no attention to the word's
// peak: the inferno colour map, whose lightness rises monotonically, so the
// order of values survives greyscale and most colour-vision deficiencies.
// The legend's gradient is built from the same stops.
var heatStops = [...][3]byte{{0, 0, 4}, {87, 16, 110}, {188, 55, 84}, {249, 142, 9}, {252, 255, 164}}

// heatMaxAlpha is the overlay's opacity at the peak; lower values fade out
// towards transparent, so the image stays visible where the word does not
// attend.
const heatMaxAlpha = 210

// heatColour maps a 0–255 attention value to an RGBA overlay pixel.
func heatColour(v byte) [4]byte {
	pos := float64(v) / 255 * float64(len(heatStops)-1)
	i := min(int(pos), len(heatStops)-2)
	f := pos - float64(i)
	var c [4]byte
	for k := 0; k < 3; k++ {
		a, b := float64(heatStops[i][k]), float64(heatStops[i+1][k])
		c[k] = byte(a + (b-a)*f + 0.5)
	}
	c[3] = byte(int(v) * heatMaxAlpha / 255)
	return c
}

// heatGradientCSS is the legend's colour bar: the overlay's colours at full
// opacity, low on the left.
func heatGradientCSS() string {
	s := "linear-gradient(to right"
	for i, c := range heatStops {
		s += fmt.Sprintf(", rgb(%d,%d,%d) %d%%", c[0], c[1], c[2], i*100/(len(heatStops)-1))
	}
	return s + ")"
}

// upsampleHeat resizes a w×h map to ow×oh by bilinear interpolation
// between cell centres (edges clamped), so a 16×16 map over a 64×64 image
// reads as a smooth field instead of blocks.
func upsampleHeat(w, h int, values []byte, ow, oh int) []byte {
	if w <= 0 || h <= 0 || ow <= 0 || oh <= 0 || len(values) != w*h {
		return nil
	}
	out := make([]byte, ow*oh)
	sample := func(pos float64, n int) (i0, i1 int, f float64) {
		pos = math.Max(0, math.Min(pos, float64(n-1)))
		i0 = int(pos)
		i1 = min(i0+1, n-1)
		return i0, i1, pos - float64(i0)
	}
	for y := 0; y < oh; y++ {
		y0, y1, fy := sample((float64(y)+0.5)*float64(h)/float64(oh)-0.5, h)
		for x := 0; x < ow; x++ {
			x0, x1, fx := sample((float64(x)+0.5)*float64(w)/float64(ow)-0.5, w)
			top := float64(values[y0*w+x0])*(1-fx) + float64(values[y0*w+x1])*fx
			bottom := float64(values[y1*w+x0])*(1-fx) + float64(values[y1*w+x1])*fx
			out[y*ow+x] = byte(top*(1-fy) + bottom*fy + 0.5)
		}
	}
	return out
}

// heatOverlaySize is the overlay's pixel size for an image of iw×ih: the
// image's own, so overlay and image pixels line up, at most maxOverlaySide
// per side (the tile is smaller than that on screen) and, for an unknown
// image, four pixels per map cell.
func heatOverlaySize(w, h, iw, ih int) (int, int) {
	const maxOverlaySide = 256
	if iw <= 0 || ih <= 0 {
		iw, ih = 4*w, 4*h
	}
	if s := max(iw, ih); s > maxOverlaySide {
		iw, ih = max(1, iw*maxOverlaySide/s), max(1, ih*maxOverlaySide/s)
	}
	return iw, ih
}
