package main

import (
	"path/filepath"
	"strings"
	"testing"

	"reword/models/tiny/scene"
)

// TestGalleryEditsAreJudged checks every gallery edit is judged the way the
// edit benchmark judges its kind: the faithful edit of a drawn scene passes,
// the unchanged source fails.
func TestGalleryEditsAreJudged(t *testing.T) {
	for i, ge := range galleryEdits {
		be := galleryBenchEdit(i)
		if be.success == nil || len(be.keep) == 0 {
			t.Fatalf("gallery edit %d (%s) has no judge", i, ge.source)
		}
		src := scene.Object{Shape: scene.Circle, Colour: scene.Red, Size: scene.Big, Position: scene.Center}
		want := src
		switch ge.kind {
		case kindColour:
			want.Colour = ge.swapTo
		case kindShape:
			src.Colour, want.Colour = scene.Purple, scene.Purple
			src.Shape, want.Shape = scene.Square, ge.swapShape
		case kindSuppress:
			want.Colour = scene.Blue
		}
		a, b := drawn(scene.PlainGray, placed(src)), drawn(scene.PlainGray, placed(want))
		if s := mustScore(t, be, a, b); !s.success || !s.keptAll() || s.bgChanged() {
			t.Errorf("%q: the faithful edit scored %+v", ge.source, s)
		}
		if s := mustScore(t, be, a, a); s.success {
			t.Errorf("%q: the unchanged source counted as the edit", ge.source)
		}
	}
}

func TestGalleryPicture(t *testing.T) {
	be := galleryBenchEdit(0)
	red := scene.Object{Shape: scene.Circle, Colour: scene.Red, Size: scene.Big, Position: scene.Center}
	blue := red
	blue.Colour = scene.Blue
	a, b := drawn(scene.PlainGray, placed(red)), drawn(scene.PlainGray, placed(blue))
	var row galleryRow
	row.title = "a red circle -> a blue circle"
	for range gallerySeeds {
		row.cells = append(row.cells, galleryCell{src: a.NRGBA(), edited: b.NRGBA(), score: mustScore(t, be, a, b)})
	}
	row.cells[3].score = mustScore(t, be, a, a) // one seed that failed
	if got, want := row.summary(), "edit right 7/8, layout kept 8/8, background kept 8/8"; !strings.Contains(got, want) {
		t.Errorf("summary %q, want it to say %q", got, want)
	}
	if got := row.cells[3].note(); !strings.HasPrefix(got, "no ") {
		t.Errorf("the failed seed's note is %q", got)
	}
	path := filepath.Join(t.TempDir(), "gallery.png")
	if err := writeGallery(path, []galleryRow{row, row}); err != nil {
		t.Fatal(err)
	}
	img := readPNG(t, path)
	side := 64 * galleryScale
	if w := img.Bounds().Dx(); w != 2*galleryMargin+len(gallerySeeds)*side+(len(gallerySeeds)-1)*galleryGap {
		t.Errorf("gallery is %d px wide", w)
	}
	// The first seed's source sits under the legend and the row title, drawn
	// galleryScale times larger: its centre pixel is the red object's.
	top := galleryMargin + 3*galleryTitle + galleryTitle
	r, g, bl, _ := img.At(galleryMargin+side/2, top+side/2).RGBA()
	if r>>8 < 150 || g>>8 > 80 || bl>>8 > 80 {
		t.Errorf("centre of the first source is (%d,%d,%d), want the red object", r>>8, g>>8, bl>>8)
	}
}

func TestBenchGalleryNeedsOut(t *testing.T) {
	var stderr strings.Builder
	err := runBenchGallery(t.Context(), nil, &strings.Builder{}, &stderr)
	if err == nil || !strings.Contains(err.Error(), "-out is required") {
		t.Errorf("without -out: %v", err)
	}
}
