package edit

import "fmt"

// Size is an image size in pixels.
type Size struct {
	Width, Height int
}

func (s Size) String() string { return fmt.Sprintf("%dx%d", s.Width, s.Height) }

// Defaults describes one model for specs: the values omitted fields take and
// the values it accepts. Model manifests provide it; Tiny and SD1 are the two
// model families Reword knows.
type Defaults struct {
	// Model is the model id a spec may name.
	Model string
	// Sizes are the image sizes the model generates; the first is the default.
	Sizes []Size
	// Schedulers are the samplers the model runs; the first is the default.
	Schedulers []string
	Steps      int
	Guidance   float64
	// Cross and Self are the default cross- and self-attention replacement
	// windows.
	Cross, Self Window
}

// Tiny returns the defaults of Reword's tiny test model: 64×64, DDIM with 50
// steps, guidance 7.5, and Prompt-to-Prompt's usual windows (cross 0.8,
// self 0.4; p2p-spec.md §1.2).
func Tiny(model string) Defaults {
	return Defaults{
		Model:      model,
		Sizes:      []Size{{64, 64}},
		Schedulers: []string{"ddim"},
		Steps:      50,
		Guidance:   7.5,
		Cross:      Fraction(0.8),
		Self:       Fraction(0.4),
	}
}

// SD1 returns the defaults of a Stable Diffusion 1.x model: 512×512, DDIM
// with 50 steps, guidance 7.5, cross 0.8, self 0.4 (p2p-spec.md §1).
func SD1(model string) Defaults {
	d := Tiny(model)
	d.Sizes = []Size{{512, 512}}
	return d
}
