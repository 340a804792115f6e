package eval

import (
	"fmt"
	"io"
	"strings"

	"reword/models/tiny/scene"
)

// SizeUnnamed is the size column of ShapeTable for prompts that leave the
// size to the model.
const SizeUnnamed = "size unnamed"

// ShapeTable counts, per shape and size, the images that kept the shape they
// were asked for. Tally's one shape rate hides where shapes go wrong; this
// breakdown shows it (the second generation's VAE, for one, turns most small
// stars into squares while it keeps every big one).
type ShapeTable struct {
	kept, total map[shapeCell]int
}

type shapeCell struct {
	shape scene.Shape
	size  string
}

// shapeColumns are the size columns, in print order.
var shapeColumns = []string{scene.Small.String(), scene.Big.String(), SizeUnnamed}

// Add counts one image of the given shape and size (a scene.Size's name or
// SizeUnnamed) that kept its shape or not.
func (t *ShapeTable) Add(shape scene.Shape, size string, kept bool) {
	if t.total == nil {
		t.kept, t.total = map[shapeCell]int{}, map[shapeCell]int{}
	}
	c := shapeCell{shape, size}
	t.total[c]++
	if kept {
		t.kept[c]++
	}
}

// Rate returns the fraction of the images of that shape and size that kept
// it, and how many there were (0, 0 when none).
func (t ShapeTable) Rate(shape scene.Shape, size string) (rate float64, n int) {
	c := shapeCell{shape, size}
	if n = t.total[c]; n == 0 {
		return 0, 0
	}
	return float64(t.kept[c]) / float64(n), n
}

// Print writes the table under title: one row per shape, one column per
// size, each cell the share that kept the shape and the image count ("-"
// where there was none).
func (t ShapeTable) Print(w io.Writer, title string) {
	fmt.Fprintf(w, "%-22s", title)
	for _, col := range shapeColumns {
		fmt.Fprintf(w, " %14s", col)
	}
	fmt.Fprintln(w)
	for _, s := range scene.Shapes {
		fmt.Fprintf(w, "  %-20s", s)
		for _, col := range shapeColumns {
			cell := "-"
			if r, n := t.Rate(s, col); n > 0 {
				cell = fmt.Sprintf("%.1f%% (%d)", 100*r, n)
			}
			fmt.Fprintf(w, " %14s", cell)
		}
		fmt.Fprintln(w)
	}
}

// BackgroundTable counts, per background a prompt names, which background
// the image showed: Tally's one background rate hides which backgrounds the
// model cannot draw and what it draws instead.
type BackgroundTable struct {
	shown shownTable
}

// Add counts one image whose prompt named background named and that showed
// judged.
func (t *BackgroundTable) Add(named, judged scene.Background) {
	t.shown.add(named.String(), judged.String())
}

// Rate returns the fraction of the images naming background b that showed
// it, and how many named it (0, 0 when none).
func (t BackgroundTable) Rate(b scene.Background) (rate float64, n int) {
	return t.shown.rate(b.String())
}

// Print writes one row per background named at least once: the share that
// showed it, the count, and what the others showed instead.
func (t BackgroundTable) Print(w io.Writer, title string) {
	t.shown.print(w, title, names(scene.Backgrounds))
}

// NoObject is ColourTable's and SizeTable's name for an image in which no
// object was found.
const NoObject = "no object"

// ColourTable counts, per object colour a prompt names, which colour the
// image's object had: Tally's one colour rate hides which colours a model
// loses and what it draws instead (a training term that weakens the words
// shows there first).
type ColourTable struct {
	shown shownTable
}

// Add counts one image whose prompt named colour named; o is the object
// judged (nil when none was found).
func (t *ColourTable) Add(named scene.Colour, o *Object) {
	t.shown.addObject(named.String(), o, func(o *Object) fmt.Stringer { return o.Colour })
}

// Rate returns the fraction of the images naming colour c whose object had
// it, and how many named it (0, 0 when none).
func (t ColourTable) Rate(c scene.Colour) (rate float64, n int) {
	return t.shown.rate(c.String())
}

// Print writes one row per colour named at least once: the share shown, the
// count, and what the others showed instead (in scene order, then NoObject).
func (t ColourTable) Print(w io.Writer, title string) {
	t.shown.print(w, title, append(names(scene.Colours), NoObject))
}

// SizeTable counts, per object size a prompt names, which size the image's
// object had: Tally's one size rate hides whether a model draws objects too
// small or too big (a training term that costs size shows which).
type SizeTable struct {
	shown shownTable
}

// Add counts one image whose prompt named size named; o is the object judged
// (nil when none was found).
func (t *SizeTable) Add(named scene.Size, o *Object) {
	t.shown.addObject(named.String(), o, func(o *Object) fmt.Stringer { return o.Size })
}

// Rate returns the fraction of the images naming size s whose object had it,
// and how many named it (0, 0 when none).
func (t SizeTable) Rate(s scene.Size) (rate float64, n int) {
	return t.shown.rate(s.String())
}

// Print writes one row per size named at least once: the share shown, the
// count, and what the others showed instead (the other size, then NoObject).
func (t SizeTable) Print(w io.Writer, title string) {
	t.shown.print(w, title, append(names(scene.Sizes), NoObject))
}

// PositionTable counts, per object position a prompt names, where the
// image's object was: Tally's one position rate hides that a model's misses
// come together (one initial noise that pulls the objects named on the left
// to the top).
type PositionTable struct {
	shown shownTable
}

// Add counts one image whose prompt named position named; o is the object
// judged (nil when none was found).
func (t *PositionTable) Add(named scene.Position, o *Object) {
	t.shown.addObject(named.String(), o, func(o *Object) fmt.Stringer { return o.Position })
}

// Rate returns the fraction of the images naming position p whose object was
// there, and how many named it (0, 0 when none).
func (t PositionTable) Rate(p scene.Position) (rate float64, n int) {
	return t.shown.rate(p.String())
}

// Print writes one row per position named at least once: the share shown,
// the count, and where the others' objects were instead (in scene order,
// then NoObject).
func (t PositionTable) Print(w io.Writer, title string) {
	t.shown.print(w, title, append(names(scene.Positions), NoObject))
}

// names returns each value's name, in order.
func names[T fmt.Stringer](values []T) []string {
	out := make([]string, len(values))
	for i, v := range values {
		out[i] = v.String()
	}
	return out
}

// shownTable counts images by what their prompt named and what the
// evaluator judged them to show, both by name.
type shownTable map[string]map[string]int

func (t *shownTable) add(named, judged string) {
	if *t == nil {
		*t = shownTable{}
	}
	if (*t)[named] == nil {
		(*t)[named] = map[string]int{}
	}
	(*t)[named][judged]++
}

// addObject counts one image whose prompt named named and whose judged
// object o (nil when none was found) showed shown(o), or NoObject.
func (t *shownTable) addObject(named string, o *Object, shown func(*Object) fmt.Stringer) {
	judged := NoObject
	if o != nil {
		judged = shown(o).String()
	}
	t.add(named, judged)
}

func (t shownTable) rate(named string) (rate float64, n int) {
	for _, k := range t[named] {
		n += k
	}
	if n == 0 {
		return 0, 0
	}
	return float64(t[named][named]) / float64(n), n
}

// print writes a row per name in order that was named at least once, and
// lists what was shown instead in the same order; order must hold every
// name the table may have counted (each table passes all of its values).
func (t shownTable) print(w io.Writer, title string, order []string) {
	fmt.Fprintf(w, "%-22s %14s  %s\n", title, "shown", "instead")
	for _, named := range order {
		r, n := t.rate(named)
		if n == 0 {
			continue
		}
		var instead []string
		for _, judged := range order {
			if k := t[named][judged]; judged != named && k > 0 {
				instead = append(instead, fmt.Sprintf("%s %d", judged, k))
			}
		}
		fmt.Fprintf(w, "  %-20s %14s  %s\n", named, fmt.Sprintf("%.1f%% (%d)", 100*r, n), strings.Join(instead, ", "))
	}
}
