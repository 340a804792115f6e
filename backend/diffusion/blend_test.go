package diffusion

import (
	"strconv"
	"strings"
	"testing"

	"reword/shared/align"
)

// On a 4×4 attention grid and an 8×8 latent: the source attends to its blend
// word at cell (0,0), the target at (3,3). After max-pooling and nearest
// upsampling, the union of both masks keeps the target's latent there; the
// rest is copied from the source. A second target without a blend is left
// alone.
func TestLocalBlendMasksAndMixes(t *testing.T) {
	const gw, gh, lw, lh, ch = 4, 4, 8, 8, 2
	m := &align.BlendMask{Source: make([]float32, 77), Target: make([]float32, 77)}
	m.Source[2], m.Target[3] = 1, 1
	b := newLocalBlend([]*align.BlendMask{m, nil}, 50, gw, gh, lw, lh)
	if b.start != 10 || b.active(9) || !b.active(10) {
		t.Fatalf("blend starts at step %d; want 10 (0.2 of 50)", b.start)
	}
	sums := make([]float32, 3*gw*gh*77)
	sums[0*77+2] = 1            // source row, cell (0,0), token 2
	sums[gw*gh*77+15*77+3] = 1  // target row, cell (3,3), token 3
	sums[gw*gh*77+5*77+3] = 0.2 // below 0.3 of the peak: not in the mask
	source, target, other := latents(ch*lw*lh, 1), latents(ch*lw*lh, 2), latents(ch*lw*lh, 3)
	b.apply(sums, source, [][]float32{target, other}, ch*lw*lh)
	kept := 0
	for y := 0; y < lh; y++ {
		for x := 0; x < lw; x++ {
			// Cells (0,0)-(1,1) pool from the source's peak, (2,2)-(3,3)
			// from the target's: 2×2 grid cells each = 4×4 latent cells.
			want := float32(1)
			if (x < 4 && y < 4) || (x >= 4 && y >= 4) {
				want = 2
			}
			for c := 0; c < ch; c++ {
				if got := target[c*lw*lh+y*lw+x]; got != want {
					t.Fatalf("latent (%d,%d) channel %d = %v, want %v", x, y, c, got, want)
				}
			}
			if target[y*lw+x] == 2 {
				kept++
			}
		}
	}
	if kept != 32 {
		t.Fatalf("kept %d target cells, want 32", kept)
	}
	for i, v := range other {
		if v != 3 {
			t.Fatalf("the target without a blend changed at %d: %v", i, v)
		}
	}
}

// An excluded word's region keeps the source even inside the blend
// region, thresholded without pooling: on a 4×4 grid equal to the latent,
// the blend word covers the left half, the excluded word one cell of it.
func TestLocalBlendExcludes(t *testing.T) {
	const g, ch = 4, 1
	m := &align.BlendMask{Source: make([]float32, 77), Target: make([]float32, 77),
		ExcludeSource: make([]float32, 77), ExcludeTarget: make([]float32, 77)}
	m.Target[3], m.ExcludeTarget[4] = 1, 1
	b := newLocalBlend([]*align.BlendMask{m}, 10, g, g, g, g)
	sums := make([]float32, 2*g*g*77)
	for y := range g {
		for x := range g {
			if x < 2 {
				sums[g*g*77+(y*g+x)*77+3] = 1
			}
		}
	}
	sums[g*g*77+(1*g+0)*77+4] = 1 // excluded word at cell (0,1)
	source, target := latents(ch*g*g, 1), latents(ch*g*g, 2)
	b.apply(sums, source, [][]float32{target}, ch*g*g)
	var got strings.Builder
	for p, v := range target {
		if p > 0 && p%g == 0 {
			got.WriteByte('/')
		}
		got.WriteString(strconv.Itoa(int(v)))
	}
	// Pooling widens the blend region by one cell (x < 3); the excluded
	// cell is not widened.
	if got.String() != "2221/1221/2221/2221" {
		t.Errorf("target rows %s, want 2221/1221/2221/2221", got.String())
	}
}

func latents(n int, v float32) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestSourceCacheEvictsByBytes(t *testing.T) {
	entry := func() *sourceEntry { return &sourceEntry{latents: make([]float32, 100), rowSize: 10} } // 400 bytes
	c := newSourceCache(1000)
	k := func(seed uint64) sourceKey { return newSourceKey("m", "p", "", "ddim", seed, 9, 7.5) }
	c.put(k(1), entry())
	c.put(k(2), entry())
	if c.get(k(1)) == nil { // 1 is now the most recently used
		t.Fatal("entry 1 missing")
	}
	c.put(k(3), entry()) // 1200 bytes > 1000: evicts 2, the least recently used
	if c.get(k(2)) != nil || c.get(k(1)) == nil || c.get(k(3)) == nil {
		t.Fatal("wrong entry evicted")
	}
	if n, b := c.stats(); n != 2 || b != 800 {
		t.Fatalf("stats %d entries, %d bytes", n, b)
	}
	c.put(k(4), &sourceEntry{latents: make([]float32, 300), rowSize: 10}) // 1200 bytes: larger than the cache
	if c.get(k(4)) != nil {
		t.Fatal("stored an entry larger than the limit")
	}
	if c.get(newSourceKey("m", "p", "", "ddim", 1, 9, 7.0)) != nil {
		t.Fatal("guidance is part of the key")
	}
}
