package diffusion

import "testing"

// On a 4×4 attention grid and an 8×8 latent: the source attends to its blend
// word at cell (0,0), the target at (3,3). After max-pooling and nearest
// upsampling, the union of both masks keeps the target's latent there; the
// rest is copied from the source.
func TestLocalBlendMasksAndMixes(t *testing.T) {
	const gw, gh, lw, lh, ch = 4, 4, 8, 8, 2
	tokens := [][]float32{make([]float32, 77), make([]float32, 77)}
	tokens[0][2], tokens[1][3] = 1, 1
	b := newLocalBlend(tokens, 50, gw, gh, lw, lh)
	if b.start != 10 || b.active(9) || !b.active(10) {
		t.Fatalf("blend starts at step %d; want 10 (0.2 of 50)", b.start)
	}
	sums := make([]float32, 2*gw*gh*77)
	sums[0*77+2] = 1            // source row, cell (0,0), token 2
	sums[gw*gh*77+15*77+3] = 1  // target row, cell (3,3), token 3
	sums[gw*gh*77+5*77+3] = 0.2 // below 0.3 of the peak: not in the mask
	source := make([]float32, ch*lw*lh)
	target := make([]float32, ch*lw*lh)
	for i := range target {
		source[i], target[i] = 1, 2
	}
	b.apply(sums, source, [][]float32{target}, ch*lw*lh)
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
