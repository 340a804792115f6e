package web

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"reword/shared/protocol"
)

func TestWordHeatAveragesTheWordsTokensOfOneRow(t *testing.T) {
	maps := []protocol.HeatMap{
		{Row: 1, Token: 2, Width: 2, Height: 1, Values: []byte{100, 0}},
		{Row: 1, Token: 3, Width: 2, Height: 1, Values: []byte{200, 50}},
		{Row: 0, Token: 2, Width: 2, Height: 1, Values: []byte{255, 255}}, // other row
		{Row: 1, Token: 4, Width: 2, Height: 1, Values: []byte{255, 255}}, // other word
		{Row: 1, Token: 3, Width: 2, Height: 2, Values: []byte{1}},        // malformed
	}
	w, h, v := wordHeat(maps, 1, []int{2, 3})
	if w != 2 || h != 1 || !slices.Equal(v, []byte{150, 25}) {
		t.Errorf("got %dx%d %v, want 2x1 [150 25]", w, h, v)
	}
	if _, _, v := wordHeat(maps, 2, []int{2}); v != nil {
		t.Errorf("a row without maps gave %v", v)
	}
}

// A 16×16 map over a 64×64 image becomes a smooth 64×64 field: cell
// centres keep their values, pixels between two cells lie between them,
// and the edges are clamped, not faded.
func TestUpsampleHeatIsSmooth(t *testing.T) {
	const w, h, n = 16, 16, 64
	values := make([]byte, w*h)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			values[y*w+x] = byte(x * 17) // 0 … 255 left to right
		}
	}
	ow, oh := heatOverlaySize(w, h, n, n)
	if ow != n || oh != n {
		t.Fatalf("overlay %dx%d for a 64x64 image, want 64x64", ow, oh)
	}
	out := upsampleHeat(w, h, values, ow, oh)
	if len(out) != n*n {
		t.Fatalf("%d values", len(out))
	}
	for y := 0; y < n; y++ {
		for x := 1; x < n; x++ {
			if out[y*n+x] < out[y*n+x-1] {
				t.Fatalf("row %d falls from %d to %d at x=%d", y, out[y*n+x-1], out[y*n+x], x)
			}
		}
		if out[y*n] != 0 || out[y*n+n-1] != 255 {
			t.Fatalf("row %d runs from %d to %d, want 0 to 255 (clamped edges)", y, out[y*n], out[y*n+n-1])
		}
	}
	distinct := map[byte]bool{}
	for _, v := range out[:n] {
		distinct[v] = true
	}
	if len(distinct) < 40 {
		t.Errorf("a row of the upsampled ramp has %d distinct values: still blocks", len(distinct))
	}
	if got := upsampleHeat(2, 2, []byte{1, 2, 3}, 4, 4); got != nil {
		t.Errorf("a map shorter than its size gave %v", got)
	}
	if got := upsampleHeat(1, 1, []byte{9}, 3, 2); !slices.Equal(got, []byte{9, 9, 9, 9, 9, 9}) {
		t.Errorf("one cell gave %v", got)
	}
	if w, h := heatOverlaySize(32, 32, 512, 512); w != 256 || h != 256 {
		t.Errorf("a 512 px image gets a %dx%d overlay, want 256x256", w, h)
	}
	if w, h := heatOverlaySize(16, 8, 0, 0); w != 64 || h != 32 {
		t.Errorf("an unknown image gets a %dx%d overlay, want 64x32", w, h)
	}
}

func TestHeatColourScale(t *testing.T) {
	if c := heatColour(0); c[3] != 0 {
		t.Errorf("no attention is drawn with alpha %d", c[3])
	}
	last := heatStops[len(heatStops)-1]
	if c := heatColour(255); c != [4]byte{last[0], last[1], last[2], heatMaxAlpha} {
		t.Errorf("the peak is %v, want the last stop at alpha %d", c, heatMaxAlpha)
	}
	prev := -1.0
	for v := 0; v < 256; v++ {
		c := heatColour(byte(v))
		lum := 0.2126*float64(c[0]) + 0.7152*float64(c[1]) + 0.0722*float64(c[2])
		if lum < prev-0.5 {
			t.Fatalf("the scale darkens at %d (%.1f after %.1f)", v, lum, prev)
		}
		prev = lum
	}
	css := heatGradientCSS()
	if !strings.HasPrefix(css, "linear-gradient(to right, rgb(0,0,4) 0%") || !strings.HasSuffix(css, "rgb(252,255,164) 100%)") {
		t.Errorf("legend gradient %q", css)
	}
}

// TestHeatOverlaysSideBySide: a word's map goes on its own image and its
// counterpart's on the other side (source ↔ edit), only for rows whose
// prompt is still the one that ran.
func TestHeatOverlaysSideBySide(t *testing.T) {
	tok := tokenizer(t)
	comps := []Comparison{Compare(tok, "a red circle", "a blue circle"), Compare(tok, "a red circle", "a big red square")}
	all := func(int) bool { return true }
	show := func(os []heatOverlay) string {
		var out []string
		for _, o := range os {
			out = append(out, fmt.Sprintf("%d:%s%v", o.Row, o.Word, o.Tokens))
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		w    wordRef
		want string
	}{
		{wordRef{Prompt: 0, Index: 1, Key: "blue"}, "1:blue[2] 0:red[2]"},
		{wordRef{Prompt: 1, Index: 1, Key: "big"}, "2:big[2]"},
		{wordRef{Prompt: 1, Index: 3, Key: "square"}, "2:square[4]"},
		{wordRef{Prompt: sourcePrompt, Index: 1, Key: "red"}, "0:red[2] 1:blue[2] 2:red[3]"},
		{wordRef{Prompt: 5, Index: 0}, ""},
	} {
		if got := show(heatOverlays(comps, tc.w, all)); got != tc.want {
			t.Errorf("%+v: overlays %q, want %q", tc.w, got, tc.want)
		}
	}
	// Edit 1's prompt changed since the run: its map is gone, and so is a
	// hovered word of it.
	edited := func(row int) bool { return row != 1 }
	if got := show(heatOverlays(comps, wordRef{Prompt: sourcePrompt, Index: 1}, edited)); got != "0:red[2] 2:red[3]" {
		t.Errorf("with edit 1 changed: %q", got)
	}
	if got := heatOverlays(comps, wordRef{Prompt: 0, Index: 1}, edited); got != nil {
		t.Errorf("a word of a changed prompt: %v", got)
	}
}
