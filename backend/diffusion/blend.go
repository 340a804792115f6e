package diffusion

// localBlend is Prompt-to-Prompt's local blend as its later notebooks run it
// (docs/algorithm.md, section 6): from
// step start on, each target keeps the source's latent outside the region
// where the blend words' accumulated cross-attention is strong.
type localBlend struct {
	start     int         // first step index the blend applies after
	tokens    [][]float32 // per prompt (source first): 77-vector, 1 at blend-word tokens
	gridW     int         // attention-map grid
	gridH     int
	latW      int // latent grid the mask is upsampled to
	latH      int
	threshold float32

	word, pooled []float32 // scratch, one map each
	masks        [][]bool  // per prompt, latent-sized
}

// blendThreshold and blendStart are the reference's defaults: masks keep
// cells above 0.3 of their maximum, from step ⌊0.2·T⌋ on.
const (
	blendThreshold = 0.3
	blendStart     = 0.2
)

func newLocalBlend(tokens [][]float32, steps, gridW, gridH, latW, latH int) *localBlend {
	b := &localBlend{
		start: int(blendStart * float64(steps)), tokens: tokens,
		gridW: gridW, gridH: gridH, latW: latW, latH: latH, threshold: blendThreshold,
		word: make([]float32, gridW*gridH), pooled: make([]float32, gridW*gridH),
	}
	for range tokens {
		b.masks = append(b.masks, make([]bool, latW*latH))
	}
	return b
}

// active reports whether the blend applies after step i.
func (b *localBlend) active(i int) bool { return i >= b.start }

// blend applies the edit's local blend after step i, once it is active:
// the targets take the source's latent outside the masks, the source
// being the replayed latent of the next step when the source row is
// replayed (the stepped rows hold no source row then).
func (s *sampling) blend(i int) {
	b := s.j.blend
	if b == nil || !b.active(i) {
		return
	}
	source := s.x[:s.rowSize]
	if s.source != nil {
		source = s.source.at(i + 1)
	}
	var targets [][]float32
	for r := 1; r < s.rows; r++ {
		targets = append(targets, s.x[r*s.rowSize:(r+1)*s.rowSize])
	}
	b.apply(s.unet.maps[s.e.blendOut].sums, source, targets, s.rowSize)
}

// apply blends the target rows of x (rows of rowSize values, source first)
// towards source, using mapSums: per prompt, the running sum of the
// attention maps [gridW·gridH, 77].
func (b *localBlend) apply(mapSums []float32, source []float32, targets [][]float32, rowSize int) {
	n := b.gridW * b.gridH
	for r := range b.tokens {
		b.mask(mapSums[r*n*77:(r+1)*n*77], b.tokens[r], b.masks[r])
	}
	cells := b.latW * b.latH
	channels := rowSize / cells
	for t, x := range targets {
		m := b.masks[t+1]
		src := b.masks[0]
		for p := 0; p < cells; p++ {
			if m[p] || src[p] {
				continue
			}
			for c := 0; c < channels; c++ {
				x[c*cells+p] = source[c*cells+p]
			}
		}
	}
}

// mask computes one prompt's binary mask at latent resolution: the summed
// attention to its blend tokens, max-pooled 3×3, upsampled (nearest),
// divided by its maximum and thresholded.
func (b *localBlend) mask(sums []float32, tokens []float32, out []bool) {
	w, h := b.gridW, b.gridH
	for p := range b.word {
		var s float32
		row := sums[p*77 : (p+1)*77]
		for k, t := range tokens {
			if t != 0 {
				s += row[k] * t
			}
		}
		b.word[p] = s
	}
	var peak float32
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			m := b.word[y*w+x]
			for dy := -1; dy <= 1; dy++ {
				for dx := -1; dx <= 1; dx++ {
					yy, xx := y+dy, x+dx
					if yy >= 0 && yy < h && xx >= 0 && xx < w && b.word[yy*w+xx] > m {
						m = b.word[yy*w+xx]
					}
				}
			}
			b.pooled[y*w+x] = m
			peak = max(peak, m)
		}
	}
	for y := 0; y < b.latH; y++ {
		gy := y * h / b.latH
		for x := 0; x < b.latW; x++ {
			gx := x * w / b.latW
			out[y*b.latW+x] = peak > 0 && b.pooled[gy*w+gx]/peak > b.threshold
		}
	}
}
