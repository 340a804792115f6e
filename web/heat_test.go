package web

import (
	"slices"
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
