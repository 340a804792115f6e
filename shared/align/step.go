package align

import "fmt"

// Targets returns the number of target prompts E.
func (c *Controller) Targets() int { return len(c.kinds) }

// Steps returns the number of diffusion steps the controller was built for.
func (c *Controller) Steps() int { return c.steps }

// Kind returns how target e (0-based) was aligned.
func (c *Controller) Kind(e int) Kind { return c.kinds[e] }

// Mapper returns target e's mapper G, 77×77 row-major (row = source token,
// column = target token). The slice is shared: do not modify it.
func (c *Controller) Mapper(e int) []float32 { return c.mapper[e] }

// BlendMasks returns each target's local blend, nil for a target that is
// not blended, or nil when no target is. The masks are shared: do not
// modify them.
func (c *Controller) BlendMasks() []*BlendMask { return c.blend }

// Step fills the control tensors of diffusion step i (0 ≤ i < Steps) into
// preallocated buffers, the graph inputs of the instrumented UNet:
//
//	crossW  p2p_cross_w  [E,77,77]  W_e[w,n] at crossW[(e*77+w)*77+n]
//	crossC  p2p_cross_c  [E,77]     c_e[n]   at crossC[e*77+n]
//	selfW   p2p_self_w   [E]        1 inside the self window, else 0
//	normW   p2p_norm_w   [E]        1 inside the norm window, else 0
//
// It allocates nothing. It returns an error if i is out of range or a buffer
// has the wrong length.
func (c *Controller) Step(i int, crossW, crossC, selfW, normW []float32) error {
	e := len(c.kinds)
	switch {
	case i < 0 || i >= c.steps:
		return fmt.Errorf("align: step %d outside [0, %d)", i, c.steps)
	case len(crossW) != e*n77*n77:
		return fmt.Errorf("align: cross W buffer has %d values; want %d (E=%d × 77 × 77)", len(crossW), e*n77*n77, e)
	case len(crossC) != e*n77:
		return fmt.Errorf("align: cross c buffer has %d values; want %d (E=%d × 77)", len(crossC), e*n77, e)
	case len(selfW) != e:
		return fmt.Errorf("align: self weight buffer has %d values; want E=%d", len(selfW), e)
	case len(normW) != e:
		return fmt.Errorf("align: norm weight buffer has %d values; want E=%d", len(normW), e)
	}
	var alpha [n77]float32
	for t := range e {
		from, to := &c.crossFrom[t], &c.crossTo[t]
		eq, keep := c.equalizer[t], c.keep[t]
		for n := range n77 {
			alpha[n] = 0
			if i >= from[n] && i < to[n] {
				alpha[n] = 1
			}
			crossC[t*n77+n] = alpha[n]*eq[n]*(1-keep[n]) + (1 - alpha[n])
		}
		g := c.mapper[t]
		w := crossW[t*n77*n77 : (t+1)*n77*n77]
		for row := range n77 {
			gr, wr := g[row*n77:(row+1)*n77], w[row*n77:(row+1)*n77]
			for n := range n77 {
				wr[n] = gr[n] * alpha[n] * eq[n]
			}
		}
		selfW[t], normW[t] = 0, 0
		if i >= c.selfFrom && i < c.selfTo {
			selfW[t] = 1
		}
		if i >= c.normFrom && i < c.normTo {
			normW[t] = 1
		}
	}
	return nil
}
