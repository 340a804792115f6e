package edit

import "fmt"

// Size is an image size in pixels.
type Size struct {
	Width, Height int
}

func (s Size) String() string { return fmt.Sprintf("%dx%d", s.Width, s.Height) }

// Defaults describes one model for specs: the values omitted fields take and
// the values it accepts. The server takes them from the model's manifest and
// its family (backend/model), and tells clients in its hello.
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
