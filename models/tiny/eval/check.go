package eval

import (
	"fmt"

	"reword/models/tiny/scene"
)

// Verdict says which attributes a prompt named and whether the image shows
// them. Attributes the prompt leaves out are not judged.
type Verdict struct {
	Found                         bool // an object was found at all
	Colour, Shape, Size, Position bool // correct (false when not named)
	NamesSize, NamesPosition      bool
	Object                        *Object // the object judged; nil when none was found
}

// CheckSingle judges an image generated for a single-object prompt: the
// largest object found must have the named colour and shape, and the size
// and position when the prompt names them.
func CheckSingle(prompt scene.Caption, r Result) (Verdict, error) {
	if len(prompt.Mentions) != 1 {
		return Verdict{}, fmt.Errorf("eval: CheckSingle needs a one-object prompt, %q names %d", prompt.Text, len(prompt.Mentions))
	}
	m := prompt.Mentions[0]
	v := Verdict{NamesSize: m.NamesSize, NamesPosition: m.NamesPosition}
	if len(r.Objects) == 0 {
		return v, nil
	}
	o := &r.Objects[0]
	v.Found, v.Object = true, o
	v.Colour = !m.NamesColour || o.Colour == m.Colour
	v.Shape = o.Shape == m.Shape
	v.Size = m.NamesSize && o.Size == m.Size
	v.Position = m.NamesPosition && o.Position == m.Position
	return v, nil
}
