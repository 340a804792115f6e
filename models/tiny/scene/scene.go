// Package scene draws the procedural 64×64 scenes the tiny model is trained
// and evaluated on, and writes their captions.
//
// It is the single source of truth for the tiny model's world: the training
// data generator, the evaluator's tests and the quality benchmarks all draw
// through it, so a scene drawn for training and one drawn to check the
// evaluator can never disagree about what "a small red star on the left"
// looks like.
//
// A Scene is a background and one or two placed objects. Each object has the
// attributes captions talk about (shape, colour, size, position) and the
// jitter captions never name (exact centre, radius and rotation; the
// texture's phase). Captions often leave attributes out, so the layout of a
// scene is partly free: that freedom is what Prompt-to-Prompt must keep when
// a word of the prompt changes.
package scene

import (
	"fmt"
	"image/color"
)

// ImageSize is the width and height of every scene in pixels.
const ImageSize = 64

// Shape is an object's outline.
type Shape int

// The shapes, in the order their names are listed in Shapes.
const (
	Circle Shape = iota
	Square
	Triangle
	Star
	Ring
)

// Shapes lists every shape.
var Shapes = []Shape{Circle, Square, Triangle, Star, Ring}

var shapeNames = [...]string{"circle", "square", "triangle", "star", "ring"}

func (s Shape) String() string {
	if s < 0 || int(s) >= len(shapeNames) {
		return fmt.Sprintf("Shape(%d)", int(s))
	}
	return shapeNames[s]
}

// Colour is an object's fill colour.
type Colour int

// The object colours.
const (
	Red Colour = iota
	Green
	Blue
	Yellow
	Purple
	Orange
	White
	Black
)

// Colours lists every object colour.
var Colours = []Colour{Red, Green, Blue, Yellow, Purple, Orange, White, Black}

var colourNames = [...]string{"red", "green", "blue", "yellow", "purple", "orange", "white", "black"}

// colourRGB are the exact fill values; the evaluator classifies colours by
// the nearest of these.
var colourRGB = [...]color.RGBA{
	{220, 30, 30, 255},
	{0, 200, 90, 255},
	{30, 60, 220, 255},
	{240, 220, 30, 255},
	{150, 0, 200, 255},
	{250, 140, 20, 255},
	{250, 250, 250, 255},
	{15, 15, 15, 255},
}

func (c Colour) String() string {
	if c < 0 || int(c) >= len(colourNames) {
		return fmt.Sprintf("Colour(%d)", int(c))
	}
	return colourNames[c]
}

// RGB is the colour's exact fill value.
func (c Colour) RGB() color.RGBA { return colourRGB[c] }

// Size is an object's nominal size.
type Size int

// The sizes.
const (
	Small Size = iota
	Big
)

// Sizes lists every size.
var Sizes = []Size{Small, Big}

var sizeNames = [...]string{"small", "big"}

// sizeRadius is the nominal circumradius in pixels; drawn objects jitter it
// by ±radiusJitter.
var sizeRadius = [...]float64{8, 12.5}

func (s Size) String() string {
	if s < 0 || int(s) >= len(sizeNames) {
		return fmt.Sprintf("Size(%d)", int(s))
	}
	return sizeNames[s]
}

// Radius is the nominal circumradius of the size in pixels.
func (s Size) Radius() float64 { return sizeRadius[s] }

// SizeThreshold is the circumradius in pixels that separates small from big
// objects: halfway between the largest small and the smallest big radius a
// scene can draw.
var SizeThreshold = (sizeRadius[Small]*(1+radiusJitter) + sizeRadius[Big]*(1-radiusJitter)) / 2

// Position is where an object sits in the image.
type Position int

// The positions.
const (
	Left Position = iota
	Right
	Top
	Bottom
	Center
)

// Positions lists every position.
var Positions = []Position{Left, Right, Top, Bottom, Center}

var positionNames = [...]string{"left", "right", "top", "bottom", "center"}

// positionPhrases are the words captions use for each position.
var positionPhrases = [...]string{"on the left", "on the right", "at the top", "at the bottom", "in the center"}

// positionAnchor is each position's nominal centre in pixels (x, y); drawn
// objects jitter it by up to ±positionJitter on each axis.
var positionAnchor = [...][2]float64{{18, 32}, {46, 32}, {32, 18}, {32, 46}, {32, 32}}

func (p Position) String() string {
	if p < 0 || int(p) >= len(positionNames) {
		return fmt.Sprintf("Position(%d)", int(p))
	}
	return positionNames[p]
}

// Phrase is how captions name the position ("on the left").
func (p Position) Phrase() string { return positionPhrases[p] }

// Anchor is the position's nominal centre in pixels.
func (p Position) Anchor() (x, y float64) { return positionAnchor[p][0], positionAnchor[p][1] }

// Background is what the objects are drawn on: a plain colour or a texture.
type Background int

// The backgrounds.
const (
	PlainWhite Background = iota
	PlainBlack
	PlainGray
	PlainCyan
	Stripes
	Grass
)

// Backgrounds lists every background.
var Backgrounds = []Background{PlainWhite, PlainBlack, PlainGray, PlainCyan, Stripes, Grass}

var backgroundNames = [...]string{"white", "black", "gray", "cyan", "striped", "grass"}

// backgroundPhrases are the words captions use for each background.
var backgroundPhrases = [...]string{"on a white background", "on a black background", "on a gray background",
	"on a cyan background", "on a striped background", "on grass"}

func (b Background) String() string {
	if b < 0 || int(b) >= len(backgroundNames) {
		return fmt.Sprintf("Background(%d)", int(b))
	}
	return backgroundNames[b]
}

// Phrase is how captions name the background ("on a white background").
func (b Background) Phrase() string { return backgroundPhrases[b] }

// The tones each background is drawn with. Objects are only drawn in colours
// that keep at least minContrast from every tone of their background, so an
// object never blends into what it stands on. The palette is chosen so that
// this rule forbids only white on white and black on black: what a caption
// leaves out (the background) then does not depend on the object's colour,
// so a colour swap has no reason to change the background. (The first model's
// palette also forbade green and purple on gray, striped and grass, blue on
// striped and black on grass; it learned that rule, and Prompt-to-Prompt
// colour swaps moved those backgrounds.)
var (
	plainRGB       = [...]color.RGBA{{245, 245, 245, 255}, {20, 20, 20, 255}, {128, 128, 128, 255}, {110, 200, 220, 255}}
	stripeLight    = color.RGBA{150, 150, 162, 255}
	stripeDark     = color.RGBA{112, 112, 124, 255}
	grassBase      = color.RGBA{74, 128, 52, 255}
	grassLightest  = 1.18 // grass pixels are grassBase scaled by a factor in [grassDarkest, grassLightest]
	grassDarkest   = 0.8
	minContrast    = 100.0
	radiusJitter   = 0.08
	positionJitter = 2.5
)

// tones returns the extreme colours the background can show, for the
// contrast rule.
func (b Background) tones() []color.RGBA {
	switch b {
	case Stripes:
		return []color.RGBA{stripeLight, stripeDark}
	case Grass:
		return []color.RGBA{scaleRGB(grassBase, grassDarkest), grassBase, scaleRGB(grassBase, grassLightest)}
	default:
		return []color.RGBA{plainRGB[b]}
	}
}

// Allows reports whether objects of colour c may be drawn on b: whether c
// keeps enough contrast from every tone of b.
func (b Background) Allows(c Colour) bool {
	for _, t := range b.tones() {
		if rgbDistance(t, c.RGB()) < minContrast {
			return false
		}
	}
	return true
}

func scaleRGB(c color.RGBA, f float64) color.RGBA {
	s := func(v uint8) uint8 { return clampByte(float64(v) * f) }
	return color.RGBA{s(c.R), s(c.G), s(c.B), 255}
}

func clampByte(v float64) uint8 {
	switch {
	case v <= 0:
		return 0
	case v >= 255:
		return 255
	default:
		return uint8(v + 0.5)
	}
}

func rgbDistance(a, b color.RGBA) float64 {
	dr, dg, db := float64(a.R)-float64(b.R), float64(a.G)-float64(b.G), float64(a.B)-float64(b.B)
	return sqrt(dr*dr + dg*dg + db*db)
}
