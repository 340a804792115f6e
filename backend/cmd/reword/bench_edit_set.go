package main

import (
	"fmt"
	"image"
	"math/rand/v2"

	"reword/models/tiny/eval"
	"reword/models/tiny/scene"
)

// Kinds of edit in the benchmark set.
const (
	kindColour   = "colour swap"
	kindShape    = "shape swap"
	kindRefine   = "added phrase"
	kindBoost    = "reweight ×2"
	kindSuppress = "reweight ×−1"
)

var editKinds = []string{kindColour, kindShape, kindRefine, kindBoost, kindSuppress}

// Prompt sets: what the source prompt names besides colour and shape.
// Prompt-to-Prompt matters most where the prompt leaves the layout and the
// background open, since the model then chooses them, and a plain
// re-generation from the same seed need not choose them the same way again.
const (
	setBare     = "bare"     // "a red circle"
	setPosition = "position" // "a red circle on the left"
	setFull     = "full"     // "a big red circle on the left on grass"
)

var promptSets = []string{setBare, setPosition, setFull}

// setExamples shows each set in the report.
var setExamples = map[string]string{setBare: "a red circle", setPosition: "a red circle on the left", setFull: "a big red circle on the left on grass"}

// attribute is an object attribute the evaluator reads.
type attribute string

const (
	attrShape    attribute = "shape"
	attrColour   attribute = "colour"
	attrPosition attribute = "position"
	attrSize     attribute = "size"
)

var attributes = []attribute{attrShape, attrColour, attrPosition, attrSize}

// benchEdit is one edit of the set and how to judge it.
type benchEdit struct {
	kind   string
	set    string
	source string
	target string
	// seeds of the initial noise, one edit each (photo edits have none).
	seeds []uint64
	// reweight of the colour word (reweight kinds only)
	word   string
	factor float64
	// swapTo is a colour swap's target colour: the background rule
	// (scene.Background.Allows) decides whether the edit must change the
	// background.
	swapTo scene.Colour
	// success judges the edited image's analysis.
	success func(res eval.Result, img image.Image) bool
	// keep lists the attributes of the source's largest object the edit
	// must leave as they are.
	keep []attribute
	// drawn holds a word swap's two captions with every attribute chosen
	// (the unnamed ones drawn with the prompts), so that the swap can be
	// drawn exactly (-drawn); nil for the other kinds.
	drawn *[2]scene.Caption
}

func (e benchEdit) reweight() bool { return e.word != "" }

// editCounts is how many prompt pairs of each kind a run edits.
type editCounts map[string]int

// Kind indices seed each kind's random streams; they are fixed so that a
// kind's edits stay the same when other kinds are added.
var kindStream = map[string]uint64{kindColour: 0, kindShape: 1, kindRefine: 2, kindBoost: 3, kindSuppress: 4}

// editSet builds counts[kind] edits of each kind, each with seeds seeds,
// deterministically. Stream index 2i+1 of a kind is the i-th edit of the
// reported split, 2i the i-th of the tuning split, and i the i-th of both
// together, so the splits never share an edit and a smaller set is a prefix
// of a larger one. Block k takes each kind's edits k·n to (k+1)·n−1 for n
// = counts[kind]: a set of the same shape that no other block shares, for
// a question asked again on edits no run has seen.
func editSet(counts editCounts, split string, seeds, block int) ([]benchEdit, error) {
	if block < 0 {
		return nil, fmt.Errorf("block %d: want 0 or more", block)
	}
	var out []benchEdit
	for _, kind := range editKinds {
		for i := block * counts[kind]; i < (block+1)*counts[kind]; i++ {
			stream := uint64(i)
			switch split {
			case "report":
				stream = 2*uint64(i) + 1
			case "tune":
				stream = 2 * uint64(i)
			case "all":
			default:
				return nil, fmt.Errorf("split %q: want report, tune or all", split)
			}
			e, err := newEdit(kind, stream, seeds)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
	}
	return out, nil
}

// newEdit draws the edit with index stream of kind from its own random
// stream.
func newEdit(kind string, stream uint64, seeds int) (benchEdit, error) {
	rng := rand.New(rand.NewPCG(2026, kindStream[kind]<<32|stream))
	sets := promptSets
	if kind == kindRefine {
		// The added phrase names the background, so its source must not.
		sets = []string{setBare, setPosition}
	}
	set := sets[(stream/2)%uint64(len(sets))]
	o := scene.Object{
		Colour:   scene.Colours[rng.IntN(len(scene.Colours))],
		Shape:    scene.Shapes[rng.IntN(len(scene.Shapes))],
		Position: scene.Positions[rng.IntN(len(scene.Positions))],
		Size:     scene.Sizes[rng.IntN(len(scene.Sizes))],
	}
	// A named background must allow every colour the edit's prompts name.
	background := func(colours ...scene.Colour) scene.Background {
		for {
			bg := scene.Backgrounds[rng.IntN(len(scene.Backgrounds))]
			ok := true
			for _, c := range colours {
				ok = ok && bg.Allows(c)
			}
			if ok {
				return bg
			}
		}
	}
	var e benchEdit
	switch kind {
	case kindColour:
		c2 := o.Colour
		for c2 == o.Colour {
			c2 = scene.Colours[rng.IntN(len(scene.Colours))]
		}
		e = colourSwap(set, o, c2, background(o.Colour, c2))
	case kindShape:
		s2 := o.Shape
		for s2 == o.Shape {
			s2 = scene.Shapes[rng.IntN(len(scene.Shapes))]
		}
		e = shapeSwap(set, o, s2, background(o.Colour))
	case kindRefine:
		e = addedPhrase(set, o, background(o.Colour))
	case kindBoost:
		e = colourReweight(set, o, background(o.Colour), 2)
	case kindSuppress:
		e = colourReweight(set, o, background(o.Colour), -1)
	default:
		return benchEdit{}, fmt.Errorf("unknown edit kind %q", kind)
	}
	// Seeds come last, so that the prompts do not depend on how many.
	for k := 0; k < seeds; k++ {
		e.seeds = append(e.seeds, rng.Uint64()%1_000_000)
	}
	return e, nil
}

// largest is the evaluator's largest object, if it found one.
func largest(r eval.Result) (eval.Object, bool) {
	if len(r.Objects) == 0 {
		return eval.Object{}, false
	}
	return r.Objects[0], true
}

// colourSwap turns o's colour into c2; bg is named by the full set only.
func colourSwap(set string, o scene.Object, c2 scene.Colour, bg scene.Background) benchEdit {
	o2 := o
	o2.Colour = c2
	src, dst := setCaption(set, o, bg), setCaption(set, o2, bg)
	return benchEdit{kind: kindColour, set: set, source: src.Text, target: dst.Text, swapTo: c2, drawn: &[2]scene.Caption{src, dst},
		success: func(r eval.Result, _ image.Image) bool { x, ok := largest(r); return ok && x.Colour == c2 },
		keep:    []attribute{attrShape, attrPosition, attrSize}}
}

// shapeSwap turns o's shape into s2.
func shapeSwap(set string, o scene.Object, s2 scene.Shape, bg scene.Background) benchEdit {
	o2 := o
	o2.Shape = s2
	src, dst := setCaption(set, o, bg), setCaption(set, o2, bg)
	return benchEdit{kind: kindShape, set: set, source: src.Text, target: dst.Text, drawn: &[2]scene.Caption{src, dst},
		success: func(r eval.Result, _ image.Image) bool { x, ok := largest(r); return ok && x.Shape == s2 },
		keep:    []attribute{attrColour, attrPosition, attrSize}}
}

// addedPhrase appends background bg to a prompt that names none.
func addedPhrase(set string, o scene.Object, bg scene.Background) benchEdit {
	src := setCaption(set, o, bg)
	return benchEdit{kind: kindRefine, set: set, source: src.Text, target: scene.NewCaption(src.Mentions, bg, true).Text,
		success: func(_ eval.Result, img image.Image) bool {
			got, err := eval.Background(img)
			return err == nil && got == bg
		},
		keep: []attribute{attrShape, attrColour, attrPosition, attrSize}}
}

// colourReweight scales the colour word of o's prompt by factor: 2 must
// keep the colour, −1 must take it away.
func colourReweight(set string, o scene.Object, bg scene.Background, factor float64) benchEdit {
	c := o.Colour
	src := setCaption(set, o, bg).Text
	e := benchEdit{kind: kindBoost, set: set, source: src, target: src, word: c.String(), factor: factor,
		success: func(r eval.Result, _ image.Image) bool { x, ok := largest(r); return ok && x.Colour == c },
		keep:    []attribute{attrShape, attrPosition, attrSize}}
	if factor < 0 {
		e.kind = kindSuppress
		e.success = func(r eval.Result, _ image.Image) bool { x, ok := largest(r); return ok && x.Colour != c }
	}
	return e
}

// setCaption is the caption of one object in a prompt set's style; bg is
// named only by the full set.
func setCaption(set string, o scene.Object, bg scene.Background) scene.Caption {
	m := scene.Mention{Object: o, NamesColour: true}
	switch set {
	case setPosition:
		m.NamesPosition = true
	case setFull:
		m.NamesPosition, m.NamesSize = true, true
	}
	return scene.NewCaption([]scene.Mention{m}, bg, set == setFull)
}
