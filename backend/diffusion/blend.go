package diffusion

import "reword/shared/align"

// localBlend is Prompt-to-Prompt's local blend as its later notebooks run it
// (docs/algorithm.md, section 6), one per target: from step start on, a
// blended target keeps the source's latent outside the region where its
// blend words' accumulated cross-attention (in the source and in the
// target) is strong, and inside the region of its excluded words.
type localBlend struct {
	start     int                // first step index the blend applies after
	masks     []*align.BlendMask // per target; nil: that target is not blended
	gridW     int                // attention-map grid
	gridH     int
	latW      int // latent grid the mask is upsampled to
	latH      int
	threshold float32

	word, pooled              []float32 // scratch, one map each
	region, excluded, scratch []bool    // scratch, latent-sized
}

// blendThreshold and blendStart are the reference's defaults: masks keep
// cells above 0.3 of their maximum, from step ⌊0.2·T⌋ on.
const (
	blendThreshold = 0.3
	blendStart     = 0.2
)

func newLocalBlend(masks []*align.BlendMask, steps, gridW, gridH, latW, latH int) *localBlend {
	cells := latW * latH
	return &localBlend{
		start: int(blendStart * float64(steps)), masks: masks,
		gridW: gridW, gridH: gridH, latW: latW, latH: latH, threshold: blendThreshold,
		word: make([]float32, gridW*gridH), pooled: make([]float32, gridW*gridH),
		region: make([]bool, cells), excluded: make([]bool, cells), scratch: make([]bool, cells),
	}
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

// apply blends the blended target rows towards source, using mapSums:
// per prompt (source first), the running sum of the attention maps
// [gridW·gridH, 77]. Targets without a blend are left as they are.
func (b *localBlend) apply(mapSums []float32, source []float32, targets [][]float32, rowSize int) {
	n := b.gridW * b.gridH * 77
	src := mapSums[:n]
	cells := b.latW * b.latH
	channels := rowSize / cells
	for t, x := range targets {
		if t >= len(b.masks) || b.masks[t] == nil {
			continue
		}
		m, tgt := b.masks[t], mapSums[(t+1)*n:(t+2)*n]
		b.union(src, tgt, m.Source, m.Target, true, b.region)
		if m.ExcludeSource != nil {
			// The reference thresholds excluded words without pooling.
			b.union(src, tgt, m.ExcludeSource, m.ExcludeTarget, false, b.excluded)
			for p := range b.region {
				b.region[p] = b.region[p] && !b.excluded[p]
			}
		}
		for p := 0; p < cells; p++ {
			if b.region[p] {
				continue
			}
			for c := 0; c < channels; c++ {
				x[c*cells+p] = source[c*cells+p]
			}
		}
	}
}

// union is the mask of the source's attention to srcTokens or the
// target's to tgtTokens: the reference's mask[:1] + mask.
func (b *localBlend) union(src, tgt, srcTokens, tgtTokens []float32, pool bool, out []bool) {
	b.mask(src, srcTokens, pool, out)
	b.mask(tgt, tgtTokens, pool, b.scratch)
	for p := range out {
		out[p] = out[p] || b.scratch[p]
	}
}

// mask computes one prompt's binary mask at latent resolution: the summed
// attention to the tokens, max-pooled 3×3 (when pool is set), upsampled
// (nearest), divided by its maximum and thresholded.
func (b *localBlend) mask(sums []float32, tokens []float32, pool bool, out []bool) {
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
			if !pool {
				b.pooled[y*w+x] = m
				peak = max(peak, m)
				continue
			}
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
