package diffusion

import (
	"container/list"
	"fmt"
	"math"
	"sync"
)

// sourceKey identifies a source trajectory: everything that determines the
// source row's latents at every step. Targets, controls and blending never
// change the source row, so any edit of the same source reuses it.
type sourceKey struct {
	model, prompt, negative, scheduler string
	// photo is "<content hash>/<fit>" for a photo's inversion trajectory
	// (invert.go), "" for a generated source.
	photo        string
	seed         uint64
	steps        int
	guidanceBits uint64
}

func newSourceKey(model, prompt, negative, sched string, seed uint64, steps int, guidance float64) sourceKey {
	return sourceKey{model: model, prompt: prompt, negative: negative, scheduler: sched, seed: seed, steps: steps, guidanceBits: math.Float64bits(guidance)}
}

// sourceEntry is a stored source run: the latent the UNet saw at each step,
// the final latent, and the decoded image.
type sourceEntry struct {
	latents []float32 // (steps+1) × latent size: input of step i at i, final at steps
	rowSize int
	image   []byte // RGB of the decoded source
}

func (s *sourceEntry) at(i int) []float32 { return s.latents[i*s.rowSize : (i+1)*s.rowSize] }

func (s *sourceEntry) bytes() int64 { return int64(len(s.latents))*4 + int64(len(s.image)) }

// sourceCache is an LRU of source trajectories bounded by bytes.
type sourceCache struct {
	mu      sync.Mutex
	limit   int64
	used    int64
	order   *list.List // front = most recently used; values are *cacheItem
	entries map[sourceKey]*list.Element
}

type cacheItem struct {
	key   sourceKey
	entry *sourceEntry
}

func newSourceCache(limit int64) *sourceCache {
	return &sourceCache{limit: limit, order: list.New(), entries: map[sourceKey]*list.Element{}}
}

func (c *sourceCache) get(k sourceKey) *sourceEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[k]
	if !ok {
		return nil
	}
	c.order.MoveToFront(el)
	return el.Value.(*cacheItem).entry
}

// put stores e, evicting least recently used entries to stay within the
// limit. An entry larger than the whole limit is not stored.
func (c *sourceCache) put(k sourceKey, e *sourceEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e.bytes() > c.limit {
		return
	}
	if el, ok := c.entries[k]; ok {
		c.used -= el.Value.(*cacheItem).entry.bytes()
		c.order.Remove(el)
	}
	c.entries[k] = c.order.PushFront(&cacheItem{k, e})
	c.used += e.bytes()
	for c.used > c.limit {
		el := c.order.Back()
		it := el.Value.(*cacheItem)
		c.order.Remove(el)
		delete(c.entries, it.key)
		c.used -= it.entry.bytes()
	}
}

func (c *sourceCache) stats() (int, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries), c.used
}

func (c *sourceCache) String() string {
	n, b := c.stats()
	return fmt.Sprintf("%d sources, %d bytes of %d", n, b, c.limit)
}
