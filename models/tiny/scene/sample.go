package scene

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
)

// HeldOut reports whether the object's (colour, shape, position) triple is
// held out of training: training scenes never draw it, so prompts built from
// these triples test whether the model composes attributes it learned
// separately. The rule holds out 20 of the 200 triples, at most one position
// per (colour, shape) pair, over every shape and position but only the four
// colours red, blue, purple and white (5·colour mod 10 is 0 or 5, and 3·shape
// + 7·position never reaches 5 mod 10). The committed model was trained with
// exactly this rule, so changing it needs a retrained model.
func HeldOut(o Object) bool {
	return (5*int(o.Colour)+3*int(o.Shape)+7*int(o.Position))%10 == 0
}

// Mention is what a caption says about one object. Captions always name the
// shape; the other attributes may be left out.
type Mention struct {
	Object
	NamesColour   bool
	NamesSize     bool
	NamesPosition bool
}

// Caption is a scene's text and the attributes it names.
type Caption struct {
	Text string
	// Words are Text's words in order (Text is their space-joined texts),
	// each with the part of the scene it describes.
	Words           []Word
	Mentions        []Mention
	NamesBackground bool
	Background      Background
}

// Region is the part of a scene a caption word describes: the background,
// one of the objects, or neither.
type Region int

// NoRegion marks words that describe no part of the scene ("and");
// BackgroundRegion the background phrase ("on a white background"). Object i
// of a scene is ObjectRegion(i).
const (
	NoRegion         Region = -1
	BackgroundRegion Region = 0
)

// ObjectRegion is the region of the scene's object i.
func ObjectRegion(i int) Region { return Region(i + 1) }

// Word is one word of a caption and the region it describes. Every word of an
// object's phrase ("a big red circle on the left") describes that object;
// the training loss that grounds words in their regions uses this.
type Word struct {
	Text   string
	Region Region
}

// NewCaption builds a caption from what it names.
func NewCaption(mentions []Mention, background Background, namesBackground bool) Caption {
	var all []Word
	add := func(text string, r Region) {
		for _, w := range strings.Fields(text) {
			all = append(all, Word{Text: w, Region: r})
		}
	}
	for i, m := range mentions {
		if i > 0 {
			add("and", NoRegion)
		}
		var words []string
		if m.NamesSize {
			words = append(words, m.Size.String())
		}
		if m.NamesColour {
			words = append(words, m.Colour.String())
		}
		words = append(words, m.Shape.String())
		words = append([]string{article(words[0])}, words...)
		if m.NamesPosition {
			words = append(words, m.Position.Phrase())
		}
		add(strings.Join(words, " "), ObjectRegion(i))
	}
	if namesBackground {
		add(background.Phrase(), BackgroundRegion)
	}
	texts := make([]string, len(all))
	for i, w := range all {
		texts[i] = w.Text
	}
	return Caption{Text: strings.Join(texts, " "), Words: all, Mentions: mentions, NamesBackground: namesBackground, Background: background}
}

// article is the indefinite article before word ("an orange circle").
func article(word string) string {
	if strings.ContainsRune("aeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}

// How often training captions name each attribute, and how often a scene
// has two objects.
const (
	pNameColour     = 0.9
	pNameSize       = 0.4
	pNamePosition   = 0.5
	pNameBackground = 0.4
	pTwoObjects     = 0.3
)

// Rotation jitter for shapes that are not round, and the gap kept between
// the circumcircles of two objects.
const (
	maxRotation = 15 * math.Pi / 180
	minGap      = 1.5
)

// TrainingExample returns the index-th training scene of the data set with
// the given seed and one caption for it. It is deterministic in (seed,
// index), so the data set can be drawn in parallel and in any order. No
// object of a training scene is HeldOut.
func TrainingExample(seed uint64, index int) (Scene, Caption) {
	rng := rand.New(rand.NewPCG(seed, uint64(index)))
	bg := Backgrounds[rng.IntN(len(Backgrounds))]
	count := 1
	if rng.Float64() < pTwoObjects {
		count = 2
	}
	var objs []Object
	taken := map[Position]bool{}
	for len(objs) < count {
		o := Object{
			Shape:    Shapes[rng.IntN(len(Shapes))],
			Colour:   Colours[rng.IntN(len(Colours))],
			Size:     Sizes[rng.IntN(len(Sizes))],
			Position: Positions[rng.IntN(len(Positions))],
		}
		if HeldOut(o) || !bg.Allows(o.Colour) || taken[o.Position] {
			continue
		}
		// Two objects sit at two of the four outer positions: the centre
		// is too close to all of them.
		if count == 2 && o.Position == Center {
			continue
		}
		taken[o.Position] = true
		objs = append(objs, o)
	}
	s := Place(rng, bg, objs)
	mentions := make([]Mention, len(s.Objects))
	for i, p := range s.Objects {
		mentions[i] = Mention{
			Object:        p.Object,
			NamesColour:   rng.Float64() < pNameColour,
			NamesSize:     rng.Float64() < pNameSize,
			NamesPosition: rng.Float64() < pNamePosition,
		}
	}
	return s, NewCaption(mentions, bg, rng.Float64() < pNameBackground)
}

// ColourTwin returns the exact colour swap of training scene s with caption
// c: one object whose colour c names, recoloured to another colour its
// background allows (never to a HeldOut object), with the same place, size,
// rotation, background and texture, and c with that colour word swapped.
// rng chooses the object and the colour. object is the recoloured object's
// index; ok is false when c names no object's colour.
func ColourTwin(rng *rand.Rand, s Scene, c Caption) (twin Scene, twinCaption Caption, object int, ok bool) {
	var named []int
	for i, m := range c.Mentions {
		if m.NamesColour {
			named = append(named, i)
		}
	}
	if len(named) == 0 {
		return Scene{}, Caption{}, 0, false
	}
	object = named[rng.IntN(len(named))]
	old := s.Objects[object].Object
	var to []Colour
	for _, col := range Colours {
		o := old
		o.Colour = col
		if col != old.Colour && s.Background.Allows(col) && !HeldOut(o) {
			to = append(to, col)
		}
	}
	if len(to) == 0 {
		return Scene{}, Caption{}, 0, false
	}
	colour := to[rng.IntN(len(to))]
	twin = s
	twin.Objects = append([]Placed(nil), s.Objects...)
	twin.Objects[object].Colour = colour
	mentions := append([]Mention(nil), c.Mentions...)
	mentions[object].Colour = colour
	return twin, NewCaption(mentions, c.Background, c.NamesBackground), object, true
}

// BackgroundTwin returns the exact background swap of training scene s
// with caption c, the edit Prompt-to-Prompt's refinement makes when a
// background phrase is added to a caption that names none ("a red circle" →
// "a red circle on grass"): the same objects in the same places, sizes,
// rotations and textures on another background that allows each of their
// colours, and c with that background's phrase added. rng chooses the
// background; ok is false when c already names one, or when no other
// background allows every object's colour.
func BackgroundTwin(rng *rand.Rand, s Scene, c Caption) (twin Scene, twinCaption Caption, ok bool) {
	if c.NamesBackground {
		return Scene{}, Caption{}, false
	}
	var to []Background
	for _, bg := range Backgrounds {
		allowed := bg != s.Background
		for _, o := range s.Objects {
			allowed = allowed && bg.Allows(o.Colour)
		}
		if allowed {
			to = append(to, bg)
		}
	}
	if len(to) == 0 {
		return Scene{}, Caption{}, false
	}
	twin = s
	twin.Objects = append([]Placed(nil), s.Objects...)
	twin.Background = to[rng.IntN(len(to))]
	return twin, NewCaption(append([]Mention(nil), c.Mentions...), twin.Background, true), true
}

// Place draws the jitter for objects on background bg: centre, radius,
// rotation and texture phase. Objects that would overlap are shrunk to
// Small and re-jittered, so the returned sizes can differ from the
// requested ones only for two-object scenes at neighbouring positions.
func Place(rng *rand.Rand, bg Background, objs []Object) Scene {
	s := Scene{Background: bg, TexturePhase: rng.Float64(), StripeAngle: rng.Float64() * math.Pi}
	for attempt := 0; ; attempt++ {
		if attempt == 20 {
			for i := range objs {
				objs[i].Size = Small
			}
		}
		s.Objects = s.Objects[:0]
		for _, o := range objs {
			x, y := o.Position.Anchor()
			p := Placed{
				Object:  o,
				CenterX: x + (2*rng.Float64()-1)*positionJitter,
				CenterY: y + (2*rng.Float64()-1)*positionJitter,
				Radius:  o.Size.Radius() * (1 + (2*rng.Float64()-1)*radiusJitter),
			}
			if o.Shape != Circle && o.Shape != Ring {
				p.Rotation = (2*rng.Float64() - 1) * maxRotation
			}
			s.Objects = append(s.Objects, p)
		}
		if !overlapping(s.Objects) {
			return s
		}
	}
}

func overlapping(objs []Placed) bool {
	for i := range objs {
		for j := i + 1; j < len(objs); j++ {
			d := math.Hypot(objs[i].CenterX-objs[j].CenterX, objs[i].CenterY-objs[j].CenterY)
			if d < objs[i].Radius+objs[j].Radius+minGap {
				return true
			}
		}
	}
	return false
}

// SceneFor draws a scene that fits caption c: named attributes as named,
// the jitter random. Unnamed attributes of the mentions are used as given,
// so callers choose them (or draw them at random) before building c.
func SceneFor(rng *rand.Rand, c Caption) (Scene, error) {
	objs := make([]Object, len(c.Mentions))
	for i, m := range c.Mentions {
		if !c.Background.Allows(m.Colour) {
			return Scene{}, fmt.Errorf("scene: a %s object cannot be drawn on a %s background (too little contrast)", m.Colour, c.Background)
		}
		for j := 0; j < i; j++ {
			if objs[j].Position == m.Position {
				return Scene{}, fmt.Errorf("scene: two objects at position %s", m.Position)
			}
		}
		if len(c.Mentions) > 1 && m.Position == Center {
			return Scene{}, fmt.Errorf("scene: in a scene of several objects none may be at the center")
		}
		objs[i] = m.Object
	}
	if len(objs) == 0 {
		return Scene{}, fmt.Errorf("scene: caption %q mentions no object", c.Text)
	}
	return Place(rng, c.Background, objs), nil
}

// EvalPrompts returns n single-object prompts built from HeldOut triples:
// each names colour, shape and position; about half name the size and half
// the background. The unnamed size and background are drawn too (returned
// in the caption's Mention and Background), so a scene fitting the prompt
// can be rendered with SceneFor. Deterministic in (n, seed).
func EvalPrompts(n int, seed uint64) []Caption {
	return singleObjectPrompts(n, seed, true)
}

// SeenPrompts returns n prompts like EvalPrompts but built from the triples
// training does draw, so that a benchmark can tell what the model learned
// from what it composes.
func SeenPrompts(n int, seed uint64) []Caption {
	return singleObjectPrompts(n, seed, false)
}

func singleObjectPrompts(n int, seed uint64, heldOut bool) []Caption {
	var held []Object
	for _, c := range Colours {
		for _, sh := range Shapes {
			for _, p := range Positions {
				if o := (Object{Shape: sh, Colour: c, Position: p}); HeldOut(o) == heldOut {
					held = append(held, o)
				}
			}
		}
	}
	// Shuffle so that a short prefix covers many triples.
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	rng.Shuffle(len(held), func(i, j int) { held[i], held[j] = held[j], held[i] })
	out := make([]Caption, 0, n)
	for i := 0; len(out) < n; i++ {
		o := held[i%len(held)]
		o.Size = Sizes[rng.IntN(len(Sizes))]
		var bg Background
		for {
			bg = Backgrounds[rng.IntN(len(Backgrounds))]
			if bg.Allows(o.Colour) {
				break
			}
		}
		m := Mention{Object: o, NamesColour: true, NamesPosition: true, NamesSize: rng.IntN(2) == 0}
		out = append(out, NewCaption([]Mention{m}, bg, rng.IntN(2) == 0))
	}
	return out
}
