package scene

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestTrainingExampleIsDeterministic(t *testing.T) {
	for i := 0; i < 20; i++ {
		a, ca := TrainingExample(5, i)
		b, cb := TrainingExample(5, i)
		if ca.Text != cb.Text || string(a.Render().Pix) != string(b.Render().Pix) {
			t.Fatalf("example %d differs between two draws", i)
		}
	}
	_, c0 := TrainingExample(5, 0)
	_, c1 := TrainingExample(6, 0)
	s0, _ := TrainingExample(5, 0)
	s1, _ := TrainingExample(6, 0)
	if c0.Text == c1.Text && string(s0.Render().Pix) == string(s1.Render().Pix) {
		t.Error("seeds 5 and 6 drew the same first example")
	}
}

// Training never draws a held-out triple, every object contrasts with its
// background, objects do not overlap, and captions say only what is true.
func TestTrainingExamplesKeepTheRules(t *testing.T) {
	held := 0
	named := map[string]int{}
	for i := 0; i < 5000; i++ {
		s, c := TrainingExample(1, i)
		if len(s.Objects) < 1 || len(s.Objects) > 2 {
			t.Fatalf("example %d has %d objects", i, len(s.Objects))
		}
		if overlapping(s.Objects) {
			t.Fatalf("example %d: objects overlap", i)
		}
		for k, o := range s.Objects {
			if HeldOut(o.Object) {
				held++
			}
			if !s.Background.Allows(o.Colour) {
				t.Fatalf("example %d: %s object on %s background", i, o.Colour, s.Background)
			}
			m := c.Mentions[k]
			if m.Object != o.Object {
				t.Fatalf("example %d: caption mentions %v, scene draws %v", i, m.Object, o.Object)
			}
			if m.NamesPosition {
				named["position"]++
				if !strings.Contains(c.Text, o.Position.Phrase()) {
					t.Fatalf("example %d: %q lacks %q", i, c.Text, o.Position.Phrase())
				}
			}
			if !strings.Contains(c.Text, o.Shape.String()) {
				t.Fatalf("example %d: %q does not name the %s", i, c.Text, o.Shape)
			}
		}
		if c.NamesBackground && !strings.Contains(c.Text, s.Background.Phrase()) {
			t.Fatalf("example %d: %q lacks %q", i, c.Text, s.Background.Phrase())
		}
	}
	if held != 0 {
		t.Errorf("%d held-out objects drawn in training", held)
	}
	if named["position"] == 0 {
		t.Error("no caption named a position")
	}
}

func TestHeldOutCoversEveryAttribute(t *testing.T) {
	colours, shapes, positions, total := map[Colour]bool{}, map[Shape]bool{}, map[Position]bool{}, 0
	for _, c := range Colours {
		for _, s := range Shapes {
			perPair := 0
			for _, p := range Positions {
				if HeldOut(Object{Shape: s, Colour: c, Position: p}) {
					colours[c], shapes[s], positions[p] = true, true, true
					total++
					perPair++
				}
			}
			if perPair > 1 {
				t.Errorf("%s %s held out at %d positions, want at most 1", c, s, perPair)
			}
		}
	}
	// The rule's documented coverage: every shape and position, four colours.
	if len(colours) != 4 || len(shapes) != len(Shapes) || len(positions) != len(Positions) {
		t.Errorf("held-out triples cover %d colours, %d shapes, %d positions; want 4, %d, %d", len(colours), len(shapes), len(positions), len(Shapes), len(Positions))
	}
	if total != 20 {
		t.Errorf("%d held-out triples, want 20", total)
	}
}

func TestEvalPromptsAreHeldOutAndDrawable(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	ps := EvalPrompts(200, 1)
	if len(ps) != 200 {
		t.Fatalf("got %d prompts", len(ps))
	}
	for _, c := range ps {
		m := c.Mentions[0]
		if !HeldOut(m.Object) || !m.NamesColour || !m.NamesPosition {
			t.Fatalf("prompt %q: held out %v, names colour %v, position %v", c.Text, HeldOut(m.Object), m.NamesColour, m.NamesPosition)
		}
		if _, err := SceneFor(rng, c); err != nil {
			t.Fatalf("prompt %q: %v", c.Text, err)
		}
	}
	for _, c := range SeenPrompts(50, 1) {
		if HeldOut(c.Mentions[0].Object) {
			t.Fatalf("seen prompt %q uses a held-out triple", c.Text)
		}
	}
}

func TestCaptionText(t *testing.T) {
	c := NewCaption([]Mention{
		{Object: Object{Shape: Circle, Colour: Red, Size: Big, Position: Left}, NamesColour: true, NamesSize: true, NamesPosition: true},
		{Object: Object{Shape: Star, Colour: Orange, Position: Right}, NamesColour: true},
	}, PlainCyan, true)
	if want := "a big red circle on the left and an orange star on a cyan background"; c.Text != want {
		t.Errorf("caption %q, want %q", c.Text, want)
	}
}

func TestSceneForRejectsImpossibleCaptions(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	white := Mention{Object: Object{Shape: Circle, Colour: White, Position: Left}, NamesColour: true}
	if _, err := SceneFor(rng, NewCaption([]Mention{white}, PlainWhite, true)); err == nil {
		t.Error("white circle on white background accepted")
	}
	red := Mention{Object: Object{Shape: Circle, Colour: Red, Position: Left}}
	if _, err := SceneFor(rng, NewCaption([]Mention{red, red}, PlainWhite, false)); err == nil {
		t.Error("two objects at the same position accepted")
	}
	if _, err := SceneFor(rng, NewCaption(nil, PlainWhite, false)); err == nil {
		t.Error("caption without objects accepted")
	}
}

// TestBackgroundIndependentOfColour checks the palette's promise: the
// contrast rule forbids only an object on a background of its own tone, so an
// unnamed background does not depend on the object's colour.
func TestBackgroundIndependentOfColour(t *testing.T) {
	for _, b := range Backgrounds {
		for _, c := range Colours {
			same := (b == PlainWhite && c == White) || (b == PlainBlack && c == Black)
			if b.Allows(c) == same {
				t.Errorf("%s on a %s background: allowed %v, want %v", c, b, b.Allows(c), !same)
			}
		}
	}
}

func TestCaptionWordsNameTheirRegions(t *testing.T) {
	circle := Mention{Object: Object{Shape: Circle, Colour: Red, Size: Big, Position: Left}, NamesColour: true, NamesSize: true, NamesPosition: true}
	ring := Mention{Object: Object{Shape: Ring, Colour: Orange, Position: Right}, NamesColour: true}
	c := NewCaption([]Mention{circle, ring}, Grass, true)
	const want = "a big red circle on the left and an orange ring on grass"
	if c.Text != want {
		t.Fatalf("text %q, want %q", c.Text, want)
	}
	regions := map[string]Region{"big": ObjectRegion(0), "left": ObjectRegion(0), "and": NoRegion, "an": ObjectRegion(1),
		"ring": ObjectRegion(1), "grass": BackgroundRegion}
	var texts []string
	for i, w := range c.Words {
		texts = append(texts, w.Text)
		if r, ok := regions[w.Text]; ok && w.Region != r {
			t.Errorf("word %d %q: region %d, want %d", i, w.Text, w.Region, r)
		}
	}
	if got := strings.Join(texts, " "); got != c.Text {
		t.Errorf("words join to %q, text is %q", got, c.Text)
	}
	if last := c.Words[len(c.Words)-2]; last.Text != "on" || last.Region != BackgroundRegion {
		t.Errorf("the background phrase's %q has region %d, want the background", last.Text, last.Region)
	}
}

// A colour twin changes one named colour and nothing else: the caption by
// that one word, the picture only inside that object, never to a colour
// the background forbids or to a held-out object; a caption that names no
// colour has no twin.
func TestColourTwin(t *testing.T) {
	twins := 0
	for i := range 400 {
		s, c := TrainingExample(1, i)
		rng := rand.New(rand.NewPCG(7, uint64(i)))
		twin, tc, k, ok := ColourTwin(rng, s, c)
		names := false
		for _, m := range c.Mentions {
			names = names || m.NamesColour
		}
		if !ok {
			if names {
				t.Errorf("scene %d (%q): no twin although the caption names a colour", i, c.Text)
			}
			continue
		}
		twins++
		was, now := s.Objects[k].Object, twin.Objects[k].Object
		if !c.Mentions[k].NamesColour || now.Colour == was.Colour || !s.Background.Allows(now.Colour) || HeldOut(now) {
			t.Fatalf("scene %d (%q): object %d %v → %v on %v", i, c.Text, k, was, now, s.Background)
		}
		if s.Objects[k].Colour != was.Colour {
			t.Fatalf("scene %d: the twin recoloured the scene it came from", i)
		}
		cw, tw := strings.Fields(c.Text), strings.Fields(tc.Text)
		diff := 0
		for j := range cw {
			if j < len(tw) && cw[j] != tw[j] {
				diff++
			}
		}
		// "a red circle" → "an orange circle": the colour and maybe its article.
		if len(cw) != len(tw) || diff < 1 || diff > 2 || !strings.Contains(" "+tc.Text+" ", " "+now.Colour.String()+" ") {
			t.Fatalf("scene %d: caption %q → %q", i, c.Text, tc.Text)
		}
		a, b := s.Render(), twin.Render()
		masks := s.ObjectMasks()
		for p := 0; p < ImageSize*ImageSize; p++ {
			if !masks[k][p] && (a.Pix[4*p] != b.Pix[4*p] || a.Pix[4*p+1] != b.Pix[4*p+1] || a.Pix[4*p+2] != b.Pix[4*p+2]) {
				// Antialiased edges (a star's thin tips) lie up to 2 px outside the mask.
				x, y := p%ImageSize, p/ImageSize
				if !near(masks[k], x, y, 2) {
					t.Fatalf("scene %d: pixel (%d, %d) away from the recoloured object changed", i, x, y)
				}
			}
		}
	}
	if twins < 300 {
		t.Errorf("%d of 400 scenes have a twin; captions name colours in nine of ten", twins)
	}
}

// A background twin keeps every object pixel for pixel and only swaps the
// background for another that allows the objects' colours; its caption is
// the caption with that background's phrase added. A caption that names a
// background has no twin.
func TestBackgroundTwin(t *testing.T) {
	twins := 0
	for i := range 400 {
		s, c := TrainingExample(1, i)
		objects := slices.Clone(s.Objects)
		twin, tc, ok := BackgroundTwin(rand.New(rand.NewPCG(7, uint64(i))), s, c)
		if !ok {
			if !c.NamesBackground {
				for _, bg := range Backgrounds {
					all := bg != s.Background
					for _, o := range s.Objects {
						all = all && bg.Allows(o.Colour)
					}
					if all {
						t.Errorf("scene %d (%q): no twin although %v allows its colours", i, c.Text, bg)
					}
				}
			}
			continue
		}
		twins++
		if c.NamesBackground {
			t.Fatalf("scene %d: a twin for %q, which names its background", i, c.Text)
		}
		// The twin's objects are its own: changing them must not reach the scene.
		twin.Objects[0].Radius++
		if !slices.Equal(s.Objects, objects) {
			t.Fatalf("scene %d: the twin shares its objects with the scene it came from", i)
		}
		twin.Objects[0].Radius--
		if twin.Background == s.Background || tc.Text != c.Text+" "+twin.Background.Phrase() || !tc.NamesBackground || tc.Background != twin.Background {
			t.Fatalf("scene %d: %q on %v → %q on %v", i, c.Text, s.Background, tc.Text, twin.Background)
		}
		for _, o := range twin.Objects {
			if !twin.Background.Allows(o.Colour) {
				t.Fatalf("scene %d: %v on %v", i, o.Colour, twin.Background)
			}
		}
		a, b := s.Render(), twin.Render()
		masks := s.ObjectMasks()
		background := invert(masks)
		outside, changed := 0, 0
		for p := 0; p < ImageSize*ImageSize; p++ {
			x, y := p%ImageSize, p/ImageSize
			in, same := false, a.Pix[4*p] == b.Pix[4*p] && a.Pix[4*p+1] == b.Pix[4*p+1] && a.Pix[4*p+2] == b.Pix[4*p+2]
			for _, m := range masks {
				in = in || m[p]
			}
			if !in && !anyNear(masks, x, y, 2) {
				outside++
				if !same {
					changed++
				}
			}
			// Antialiased edges blend in the background up to 2 px inside the mask.
			if in && !same && !anyNear(background, x, y, 2) {
				t.Fatalf("scene %d: object pixel (%d, %d) changed", i, x, y)
			}
		}
		if changed*2 < outside {
			t.Fatalf("scene %d: %v → %v changed %d of %d background pixels", i, s.Background, twin.Background, changed, outside)
		}
	}
	// Captions leave the background unnamed in six of ten.
	if twins < 200 {
		t.Errorf("%d of 400 scenes have a twin", twins)
	}
}

// anyNear reports whether any of masks holds a pixel within r of (x, y).
func anyNear(masks [][]bool, x, y, r int) bool {
	for _, m := range masks {
		if near(m, x, y, r) {
			return true
		}
	}
	return false
}

// invert is the complement of the union of masks, as a one-mask list.
func invert(masks [][]bool) [][]bool {
	out := make([]bool, ImageSize*ImageSize)
	for p := range out {
		out[p] = true
		for _, m := range masks {
			out[p] = out[p] && !m[p]
		}
	}
	return [][]bool{out}
}

// near reports whether mask holds a pixel within r of (x, y).
func near(mask []bool, x, y, r int) bool {
	for yy := max(y-r, 0); yy <= min(y+r, ImageSize-1); yy++ {
		for xx := max(x-r, 0); xx <= min(x+r, ImageSize-1); xx++ {
			if mask[yy*ImageSize+xx] {
				return true
			}
		}
	}
	return false
}
