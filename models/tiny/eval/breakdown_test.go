package eval

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"

	"reword/models/tiny/scene"
)

// TestShapeTableCountsJudgedShapes: Judge's verdict feeds the table, each
// image under its shape and size, and Print shows every shape with the
// share kept and the count, "-" where nothing was counted.
func TestShapeTableCountsJudgedShapes(t *testing.T) {
	star := scene.Object{Shape: scene.Star, Colour: scene.Red, Size: scene.Big, Position: scene.Left}
	square := scene.Object{Shape: scene.Square, Colour: scene.Red, Size: scene.Big, Position: scene.Left}
	c := scene.NewCaption([]scene.Mention{{Object: star, NamesColour: true, NamesSize: true, NamesPosition: true}}, scene.PlainCyan, false)
	rng := rand.New(rand.NewPCG(7, 8))
	var tl Tally
	var tab ShapeTable
	for _, o := range []scene.Object{star, star, square} {
		j, err := tl.Judge(c, scene.Place(rng, scene.PlainCyan, []scene.Object{o}).Render())
		if err != nil {
			t.Fatal(err)
		}
		if j.BackgroundJudged {
			t.Errorf("the prompt names no background, yet Judge judged one: %+v", j)
		}
		tab.Add(scene.Star, scene.Big.String(), j.Shape)
	}
	tab.Add(scene.Star, SizeUnnamed, false)
	if tl.N != 3 || tl.Shape != 2 {
		t.Fatalf("Judge counted %d of %d shapes right, want 2 of 3", tl.Shape, tl.N)
	}
	if r, n := tab.Rate(scene.Star, scene.Big.String()); n != 3 || r != 2.0/3 {
		t.Errorf("big stars: %v of %d, want 2/3 of 3", r, n)
	}
	if r, n := tab.Rate(scene.Star, SizeUnnamed); n != 1 || r != 0 {
		t.Errorf("unnamed-size stars: %v of %d, want 0 of 1", r, n)
	}
	if r, n := tab.Rate(scene.Circle, scene.Small.String()); n != 0 || r != 0 {
		t.Errorf("small circles, never counted: %v of %d", r, n)
	}
	var out bytes.Buffer
	tab.Print(&out, "generated")
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1+len(scene.Shapes) {
		t.Fatalf("%d lines, want a title and one per shape:\n%s", len(lines), out.String())
	}
	if f := strings.Fields(lines[4]); strings.Join(f, " ") != "star - 66.7% (3) 0.0% (1)" {
		t.Errorf("star row %q", lines[4])
	}
	if f := strings.Fields(lines[1]); strings.Join(f, " ") != "circle - - -" {
		t.Errorf("circle row %q", lines[1])
	}
}

// TestBackgroundTableNamesWhatWasShownInstead: each named background's
// share shown and the backgrounds drawn instead, in scene order; a
// background no prompt named has no row.
func TestBackgroundTableNamesWhatWasShownInstead(t *testing.T) {
	var tab BackgroundTable
	tab.Add(scene.PlainWhite, scene.PlainGray)
	tab.Add(scene.PlainWhite, scene.PlainWhite)
	tab.Add(scene.PlainWhite, scene.Stripes)
	tab.Add(scene.PlainWhite, scene.PlainGray)
	tab.Add(scene.Grass, scene.Grass)
	if r, n := tab.Rate(scene.PlainWhite); n != 4 || r != 0.25 {
		t.Errorf("white: %v of %d, want 1/4 of 4", r, n)
	}
	if r, n := tab.Rate(scene.PlainCyan); n != 0 || r != 0 {
		t.Errorf("cyan, never named: %v of %d", r, n)
	}
	var out bytes.Buffer
	tab.Print(&out, "generated")
	want := []string{"generated shown instead", "white 25.0% (4) gray 2, striped 1", "grass 100.0% (1)"}
	checkLines(t, out.String(), want)
}

// TestColourTableNamesWhatWasShownInstead: each named colour's share shown,
// the colours drawn instead in scene order and images without an object
// last; a colour no prompt named has no row.
func TestColourTableNamesWhatWasShownInstead(t *testing.T) {
	var tab ColourTable
	tab.Add(scene.Yellow, &Object{Colour: scene.White})
	tab.Add(scene.Yellow, &Object{Colour: scene.Yellow})
	tab.Add(scene.Yellow, nil)
	tab.Add(scene.Yellow, &Object{Colour: scene.Orange})
	tab.Add(scene.Yellow, &Object{Colour: scene.White})
	tab.Add(scene.Red, &Object{Colour: scene.Red})
	if r, n := tab.Rate(scene.Yellow); n != 5 || r != 0.2 {
		t.Errorf("yellow: %v of %d, want 1/5 of 5", r, n)
	}
	if r, n := tab.Rate(scene.Blue); n != 0 || r != 0 {
		t.Errorf("blue, never named: %v of %d", r, n)
	}
	var out bytes.Buffer
	tab.Print(&out, "generated")
	want := []string{"generated shown instead", "red 100.0% (1)", "yellow 20.0% (5) orange 1, white 2, no object 1"}
	checkLines(t, out.String(), want)
}

// TestSizeTableNamesWhatWasShownInstead: each named size's share shown, the
// other size and images without an object as what was shown instead.
func TestSizeTableNamesWhatWasShownInstead(t *testing.T) {
	var tab SizeTable
	tab.Add(scene.Big, &Object{Size: scene.Big})
	tab.Add(scene.Big, &Object{Size: scene.Small})
	tab.Add(scene.Big, &Object{Size: scene.Small})
	tab.Add(scene.Big, nil)
	tab.Add(scene.Small, &Object{Size: scene.Small})
	if r, n := tab.Rate(scene.Big); n != 4 || r != 0.25 {
		t.Errorf("big: %v of %d, want 1/4 of 4", r, n)
	}
	var out bytes.Buffer
	tab.Print(&out, "generated")
	want := []string{"generated shown instead", "small 100.0% (1)", "big 25.0% (4) small 2, no object 1"}
	checkLines(t, out.String(), want)
}

// TestPositionTableNamesWhereTheObjectWasInstead: each named position's
// share shown and where the other objects were, in scene order, images
// without an object last; a position no prompt named has no row.
func TestPositionTableNamesWhereTheObjectWasInstead(t *testing.T) {
	var tab PositionTable
	tab.Add(scene.Left, &Object{Position: scene.Top})
	tab.Add(scene.Left, &Object{Position: scene.Left})
	tab.Add(scene.Left, &Object{Position: scene.Center})
	tab.Add(scene.Left, &Object{Position: scene.Top})
	tab.Add(scene.Left, nil)
	tab.Add(scene.Bottom, &Object{Position: scene.Bottom})
	if r, n := tab.Rate(scene.Left); n != 5 || r != 0.2 {
		t.Errorf("left: %v of %d, want 1/5 of 5", r, n)
	}
	if r, n := tab.Rate(scene.Right); n != 0 || r != 0 {
		t.Errorf("right, never named: %v of %d", r, n)
	}
	var out bytes.Buffer
	tab.Print(&out, "generated, seed 1")
	want := []string{"generated, seed 1 shown instead", "left 20.0% (5) top 2, center 1, no object 1", "bottom 100.0% (1)"}
	checkLines(t, out.String(), want)
}

// checkLines compares a printed table's lines, each with its runs of spaces
// made one, with want.
func checkLines(t *testing.T, out string, want []string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), out)
	}
	for i, l := range lines {
		if got := strings.Join(strings.Fields(l), " "); got != want[i] {
			t.Errorf("line %d: %q, want %q", i, got, want[i])
		}
	}
}
