package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"reword/backend/diffusion"
	"reword/models/tiny/scene"
)

// drawn renders objects on bg with fixed jitter, so that two calls with
// the same geometry differ only where their attributes do.
func drawn(bg scene.Background, objs ...scene.Placed) diffusion.Image {
	return rgbImage(scene.Scene{Background: bg, TexturePhase: 0.25, StripeAngle: 0.6, Objects: objs}.Render())
}

func placed(o scene.Object) scene.Placed {
	x, y := o.Position.Anchor()
	return scene.Placed{Object: o, CenterX: x + 1, CenterY: y - 1, Radius: o.Size.Radius(), Rotation: 0.1}
}

var redSquare = scene.Object{Shape: scene.Square, Colour: scene.Red, Size: scene.Big, Position: scene.Left}

func mustScore(t *testing.T, e benchEdit, src, res diffusion.Image) editScore {
	t.Helper()
	s, err := score(e, src, res)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestScoreColourSwap(t *testing.T) {
	e := colourSwap(setBare, redSquare, scene.Blue, scene.PlainGray)
	if e.source != "a red square" || e.target != "a blue square" {
		t.Fatalf("prompts %q → %q", e.source, e.target)
	}
	blue := redSquare
	blue.Colour = scene.Blue
	src := drawn(scene.PlainGray, placed(redSquare))

	// The faithful edit: only the colour changes.
	s := mustScore(t, e, src, drawn(scene.PlainGray, placed(blue)))
	if !s.success || s.broken || s.bgChanged() || s.bgReplaced() || s.iou < 0.99 {
		t.Errorf("faithful colour swap: %+v", s)
	}
	for _, at := range []attribute{attrShape, attrPosition, attrSize} {
		if kept, judged := s.kept[at]; !judged || !kept {
			t.Errorf("faithful colour swap: %s kept %v (judged %v)", at, kept, judged)
		}
	}
	if _, judged := s.kept[attrColour]; judged {
		t.Error("a colour swap judged whether the colour was kept")
	}
	if s.srcBackground != scene.PlainGray || s.background != scene.PlainGray {
		t.Errorf("backgrounds %s → %s, want gray → gray", s.srcBackground, s.background)
	}

	// The colour changes, but the object moves and shrinks and the
	// background becomes grass.
	moved := blue
	moved.Position, moved.Size, moved.Shape = scene.Right, scene.Small, scene.Star
	s = mustScore(t, e, src, drawn(scene.Grass, placed(moved)))
	if !s.success || !s.bgChanged() || !s.bgReplaced() || s.background != scene.Grass {
		t.Errorf("colour swap on grass: success %v, background %.1f dB (%s)", s.success, s.bgPSNR, s.background)
	}
	for _, at := range []attribute{attrShape, attrPosition, attrSize} {
		if s.kept[at] {
			t.Errorf("moved, shrunk star: %s counted as kept", at)
		}
	}

	// A red square again: the colour did not change.
	if s := mustScore(t, e, src, src); s.success {
		t.Error("an unchanged image counted as a successful colour swap")
	}
}

func TestScoreBrokenEdit(t *testing.T) {
	e := colourSwap(setPosition, redSquare, scene.Blue, scene.PlainCyan)
	s := mustScore(t, e, drawn(scene.PlainCyan, placed(redSquare)), drawn(scene.PlainCyan))
	if !s.broken || s.success || len(s.kept) != 0 || s.hasShift || s.hasArea {
		t.Errorf("an edit with no object: broken %v, success %v, kept %v, shift %v, area %v", s.broken, s.success, s.kept, s.hasShift, s.hasArea)
	}
}

// TestScoreObjectArea: the area ratio reads an object redrawn smaller or
// larger at its place (area going with the radius squared), 1 for a
// faithful swap, and a tally's mean is geometric, so half and twice the
// size cancel out.
func TestScoreObjectArea(t *testing.T) {
	e := colourSwap(setBare, redSquare, scene.Yellow, scene.PlainGray)
	src := drawn(scene.PlainGray, placed(redSquare))
	yellow := redSquare
	yellow.Colour = scene.Yellow
	scaled := func(k float64) diffusion.Image {
		p := placed(yellow)
		p.Radius *= k
		return drawn(scene.PlainGray, p)
	}
	for _, c := range []struct {
		k        float64
		min, max float64
	}{{1, 0.95, 1.05}, {0.7, 0.40, 0.58}, {1.4, 1.75, 2.2}} {
		s := mustScore(t, e, src, scaled(c.k))
		if !s.hasArea || s.areaRatio < c.min || s.areaRatio > c.max {
			t.Errorf("radius ×%.1f: area ratio %.3f (valid %v), want %.2f…%.2f", c.k, s.areaRatio, s.hasArea, c.min, c.max)
		}
	}
	var tl tally
	tl.add(editScore{areaRatio: 0.5, hasArea: true})
	tl.add(editScore{areaRatio: 2, hasArea: true})
	tl.add(editScore{broken: true})
	if m, ok := tl.meanAreaRatio(); !ok || math.Abs(m-1) > 1e-12 {
		t.Errorf("mean of ×0.5 and ×2 with one broken edit: %v (ok %v), want 1", m, ok)
	}
	if _, ok := (&tally{}).meanAreaRatio(); ok {
		t.Error("an empty tally has an area ratio")
	}

	// The tables show the mean under their header's column.
	var half tally
	half.add(editScore{success: true, areaRatio: 0.5, hasArea: true})
	heads := tableRows(scoreColumns)[0]
	row := strings.Split(half.fullRow(), "\t")
	if at := slices.Index(heads, "object area, edit / source"); at < 0 || len(row) != len(heads) || row[at] != "0.50" {
		t.Errorf("a tally of one edit at half the area: row %q under %q", row, heads)
	}
}

func TestScoreShapeSwap(t *testing.T) {
	e := shapeSwap(setFull, redSquare, scene.Circle, scene.Grass)
	if e.source != "a big red square on the left on grass" || e.target != "a big red circle on the left on grass" {
		t.Fatalf("prompts %q → %q", e.source, e.target)
	}
	circle := redSquare
	circle.Shape = scene.Circle
	src := drawn(scene.Grass, placed(redSquare))
	s := mustScore(t, e, src, drawn(scene.Grass, placed(circle)))
	if !s.success || s.bgChanged() || s.broken {
		t.Errorf("faithful shape swap: %+v", s)
	}
	for _, at := range []attribute{attrColour, attrPosition, attrSize} {
		if !s.kept[at] {
			t.Errorf("faithful shape swap: %s not kept", at)
		}
	}
	// A small orange circle: the shape changed, colour and size did not stay.
	small := circle
	small.Size, small.Colour = scene.Small, scene.Orange
	s = mustScore(t, e, src, drawn(scene.Grass, placed(small)))
	if !s.success || s.kept[attrSize] || s.kept[attrColour] || !s.kept[attrPosition] {
		t.Errorf("small orange circle: success %v, kept %v", s.success, s.kept)
	}
}

func TestScoreReweights(t *testing.T) {
	src := drawn(scene.PlainWhite, placed(redSquare))
	orange := redSquare
	orange.Colour = scene.Orange
	faded := drawn(scene.PlainWhite, placed(orange))
	boost := colourReweight(setBare, redSquare, scene.PlainWhite, 2)
	suppress := colourReweight(setBare, redSquare, scene.PlainWhite, -1)
	if boost.kind != kindBoost || suppress.kind != kindSuppress || boost.word != "red" || boost.target != boost.source {
		t.Fatalf("reweights: %+v / %+v", boost, suppress)
	}
	if s := mustScore(t, boost, src, src); !s.success || s.bgChanged() {
		t.Errorf("×2 keeping the red: success %v, background %.1f dB", s.success, s.bgPSNR)
	}
	if s := mustScore(t, boost, src, faded); s.success {
		t.Error("×2 that lost the red counted as a success")
	}
	if s := mustScore(t, suppress, src, faded); !s.success || s.bgChanged() || !s.kept[attrShape] {
		t.Errorf("×−1 that took the red away: success %v, background %.1f dB, kept %v", s.success, s.bgPSNR, s.kept)
	}
	if s := mustScore(t, suppress, src, src); s.success {
		t.Error("×−1 that kept the red counted as a success")
	}
	// Taking the colour away by repainting the background is still a
	// changed background.
	if s := mustScore(t, suppress, src, drawn(scene.PlainBlack, placed(orange))); !s.bgChanged() {
		t.Errorf("white → black background: %.1f dB, not counted as changed", s.bgPSNR)
	}
}

func TestScoreAddedPhrase(t *testing.T) {
	e := addedPhrase(setPosition, redSquare, scene.Stripes)
	if e.target != "a red square on the left on a striped background" {
		t.Fatalf("target %q", e.target)
	}
	src := drawn(scene.PlainGray, placed(redSquare))
	if s := mustScore(t, e, src, drawn(scene.Stripes, placed(redSquare))); !s.success || !s.bgChanged() || !s.kept[attrColour] {
		t.Errorf("stripes added: success %v, background %.1f dB, kept %v", s.success, s.bgPSNR, s.kept)
	}
	if s := mustScore(t, e, src, src); s.success {
		t.Error("a gray background counted as striped")
	}
}

// TestMustChangeBackground: only white on white and black on black are
// forbidden, and the source image's background decides, not the prompt's.
func TestMustChangeBackground(t *testing.T) {
	for _, c := range []struct {
		to   scene.Colour
		bg   scene.Background
		must bool
	}{
		{scene.White, scene.PlainWhite, true},
		{scene.Black, scene.PlainBlack, true},
		{scene.White, scene.PlainBlack, false},
		{scene.Blue, scene.PlainWhite, false},
		{scene.White, scene.Grass, false},
	} {
		e := colourSwap(setBare, redSquare, c.to, scene.PlainGray)
		s := mustScore(t, e, drawn(c.bg, placed(redSquare)), drawn(c.bg, placed(redSquare)))
		if got := mustChangeBackground(e, s.srcBackground); got != c.must {
			t.Errorf("red → %s on a drawn %s background: must change %v, want %v", c.to, c.bg, got, c.must)
		}
	}
	e := shapeSwap(setBare, scene.Object{Shape: scene.Circle, Colour: scene.White}, scene.Ring, scene.PlainGray)
	if mustChangeBackground(e, scene.PlainWhite) {
		t.Error("a shape swap must change the background")
	}
}

// TestEditSetIsStable: the splits never share an edit, a smaller set is a
// prefix of a larger one, and every kind uses the prompt sets it may.
func TestEditSetIsStable(t *testing.T) {
	counts := editCounts{kindColour: 9, kindShape: 4, kindRefine: 4, kindBoost: 3, kindSuppress: 3}
	report, err := editSet(counts, "report", 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	tune, err := editSet(counts, "tune", 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	key := func(e benchEdit) string { return fmt.Sprint(e.kind, e.source, e.target, e.seeds) }
	seen := map[string]bool{}
	for _, e := range report {
		seen[key(e)] = true
	}
	for _, e := range tune {
		if seen[key(e)] {
			t.Errorf("the splits share %s %q → %q at seeds %v", e.kind, e.source, e.target, e.seeds)
		}
	}
	smaller, err := editSet(editCounts{kindColour: 3}, "report", 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range smaller {
		if e.source != report[i].source || e.target != report[i].target || e.seeds[0] != report[i].seeds[0] {
			t.Errorf("edit %d differs in a smaller set: %q → %q seed %d vs %q → %q seed %d", i, e.source, e.target, e.seeds[0], report[i].source, report[i].target, report[i].seeds[0])
		}
	}
	sets := map[string]map[string]bool{}
	for _, e := range report {
		if len(e.seeds) != 3 {
			t.Errorf("%s %q has %d seeds, want 3", e.kind, e.source, len(e.seeds))
		}
		if sets[e.kind] == nil {
			sets[e.kind] = map[string]bool{}
		}
		sets[e.kind][e.set] = true
	}
	if len(sets[kindColour]) != 3 {
		t.Errorf("9 colour swaps use prompt sets %v, want all three", sets[kindColour])
	}
	if sets[kindRefine][setFull] {
		t.Error("an added phrase was appended to a prompt that names its background")
	}
	if _, err := editSet(counts, "half", 1, 0); err == nil {
		t.Error("split \"half\" accepted")
	}
	// Block 1 is the next pairs of each kind: the same shape, no edit of
	// block 0's, and the pairs a set twice as large adds.
	next, err := editSet(counts, "report", 3, 1)
	if err != nil {
		t.Fatal(err)
	}
	double := editCounts{}
	for k, n := range counts {
		double[k] = 2 * n
	}
	both, err := editSet(double, "report", 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(next) != len(report) {
		t.Fatalf("block 1 has %d edits, block 0 %d", len(next), len(report))
	}
	var added []benchEdit
	for _, kind := range editKinds {
		for _, e := range both {
			if e.kind == kind && !seen[key(e)] {
				added = append(added, e)
			}
		}
	}
	for i, e := range next {
		if seen[key(e)] {
			t.Errorf("block 1 repeats block 0's %s %q → %q", e.kind, e.source, e.target)
		}
		if key(e) != key(added[i]) {
			t.Errorf("block 1's edit %d is %s %q → %q; the doubled set adds %s %q → %q there", i, e.kind, e.source, e.target, added[i].kind, added[i].source, added[i].target)
		}
	}
	if _, err := editSet(counts, "report", 1, -1); err == nil {
		t.Error("block -1 accepted")
	}
}

// TestBackgroundBeyondTheEdges: a faint change in the pixels next to an
// object (what a decoder does after a new colour: too faint to be read as
// the object) changes the background by the rule but not beyond the edge
// band; the same change farther out changes both.
func TestBackgroundBeyondTheEdges(t *testing.T) {
	e := colourSwap(setBare, redSquare, scene.Blue, scene.PlainGray)
	blue := redSquare
	blue.Colour = scene.Blue
	src, swapped := drawn(scene.PlainGray, placed(redSquare)), drawn(scene.PlainGray, placed(blue))
	fg := scene.Scene{Objects: []scene.Placed{placed(redSquare)}}.ForegroundMask()
	near := dilate(fg, swapped.Width, swapped.Height, edgeBand)
	paint := func(img diffusion.Image, where func(p int) bool) diffusion.Image {
		out := img
		out.RGB = append([]byte(nil), img.RGB...)
		for p := range fg {
			if where(p) {
				for c := range 3 {
					out.RGB[3*p+c] += 40 // gray 128 to 168
				}
			}
		}
		return out
	}
	edge := mustScore(t, e, src, paint(swapped, func(p int) bool { return near[p] && !fg[p] }))
	if !edge.success || !edge.bgChanged() || edge.bgChangedBeyondEdge() {
		t.Errorf("a faint band around the object: changed %v (%.1f dB), beyond the edges %v (%.1f dB); want true, false",
			edge.bgChanged(), edge.bgPSNR, edge.bgChangedBeyondEdge(), edge.bgPSNRBeyondEdge)
	}
	corner := mustScore(t, e, src, paint(swapped, func(p int) bool { return p%64 < 24 && p/64 >= 40 }))
	if !corner.bgChanged() || !corner.bgChangedBeyondEdge() {
		t.Errorf("a recoloured corner far from the object: changed %v, beyond the edges %v; want both", corner.bgChanged(), corner.bgChangedBeyondEdge())
	}
	if got := dilate([]bool{false, false, false, false, true, false, false, false, false}, 3, 3, 1); fmt.Sprint(got) != fmt.Sprint([]bool{true, true, true, true, true, true, true, true, true}) {
		t.Errorf("dilate of a 3×3 mask's centre by 1: %v", got)
	}
}

// An edit the evaluator reads as one object over the whole picture leaves
// no pixel outside both foregrounds; its background is read where the
// source showed one, so drawing over it counts as a change.
func TestBackgroundCoveredByTheEdit(t *testing.T) {
	src := drawn(scene.PlainGray, placed(redSquare))
	srcFG := scene.Scene{Objects: []scene.Placed{placed(redSquare)}}.ForegroundMask()
	noise := src
	noise.RGB = make([]byte, len(src.RGB))
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range noise.RGB {
		noise.RGB[i] = byte(rng.UintN(256))
	}
	all := make([]bool, len(srcFG))
	for p := range all {
		all[p] = true
	}
	for _, band := range []int{0, edgeBand} {
		if db := backgroundPSNR(src, noise, srcFG, all, band); db > 20 {
			t.Errorf("band %d: noise over the whole picture reads %.1f dB of background; want below 20", band, db)
		}
		if db := backgroundPSNR(src, src, srcFG, all, band); db != 60 {
			t.Errorf("band %d: an unchanged picture read as all object: %.1f dB, want 60", band, db)
		}
	}
	// The source itself all object: the whole picture is compared.
	if db := backgroundPSNR(src, noise, all, all, 0); db > 20 {
		t.Errorf("a source with no background: noise reads %.1f dB, want below 20", db)
	}
}
