package clip

// bpeScratch holds the buffers of one BPE run so that encoding a prompt does
// not allocate per word.
type bpeScratch struct {
	next, prev []int32
	heap       pairHeap
	batch      []pairEntry
	out        []int32
}

// pairEntry is a candidate merge of the symbol at node pos with its right
// neighbour, valid while those two symbols are still left and right.
type pairEntry struct {
	rank        int32
	pos         int32
	left, right int32
}

// bpe merges the symbols of one word exactly as CLIP's reference does:
// repeatedly take the adjacent pair with the lowest merge rank and merge all
// its occurrences from left to right (without overlap), until no pair has a
// rank. A heap keeps this O(n log n) instead of the reference's O(n²), so a
// long pasted "word" cannot stall the browser; all occurrences of one rank
// are merged before any pair the merges create (which may rank lower), as in
// the reference. word is overwritten; the result is valid until the next call
// with the same scratch.
func (t *Tokenizer) bpe(word []int32, s *bpeScratch) []int32 {
	n := len(word)
	if n < 2 {
		return word
	}
	s.next, s.prev = resize(s.next, n), resize(s.prev, n)
	s.heap = s.heap[:0]
	for i := range n {
		s.next[i], s.prev[i] = int32(i+1), int32(i-1)
	}
	s.next[n-1] = -1
	for i := 0; i+1 < n; i++ {
		t.pushPair(s, word, int32(i))
	}
	for len(s.heap) > 0 {
		rank := s.heap[0].rank
		s.batch = s.batch[:0]
		for len(s.heap) > 0 && s.heap[0].rank == rank {
			s.batch = append(s.batch, s.heap.pop())
		}
		// Popped in increasing position: the reference's left-to-right scan.
		for _, e := range s.batch {
			p := e.pos
			q := s.next[p]
			if word[p] != e.left || q < 0 || word[q] != e.right {
				continue // stale: one of the two symbols was merged already
			}
			word[p] = t.merges[pairKey(e.left, e.right)].id
			word[q] = -1
			s.next[p] = s.next[q]
			if s.next[q] >= 0 {
				s.prev[s.next[q]] = p
			}
			if s.prev[p] >= 0 {
				t.pushPair(s, word, s.prev[p])
			}
			t.pushPair(s, word, p)
		}
	}
	s.out = s.out[:0]
	for p := int32(0); p >= 0; p = s.next[p] {
		s.out = append(s.out, word[p])
	}
	return s.out
}

// pushPair queues the pair starting at node p if it has a merge rule.
func (t *Tokenizer) pushPair(s *bpeScratch, word []int32, p int32) {
	q := s.next[p]
	if q < 0 {
		return
	}
	if m, ok := t.merges[pairKey(word[p], word[q])]; ok {
		s.heap.push(pairEntry{rank: m.rank, pos: p, left: word[p], right: word[q]})
	}
}

func resize(b []int32, n int) []int32 {
	if cap(b) < n {
		return make([]int32, n)
	}
	return b[:n]
}

// pairHeap is a binary min-heap ordered by (rank, pos).
type pairHeap []pairEntry

func (h pairHeap) less(i, j int) bool {
	return h[i].rank < h[j].rank || (h[i].rank == h[j].rank && h[i].pos < h[j].pos)
}

func (h *pairHeap) push(e pairEntry) {
	*h = append(*h, e)
	a := *h
	for i := len(a) - 1; i > 0; {
		parent := (i - 1) / 2
		if !a.less(i, parent) {
			break
		}
		a[i], a[parent] = a[parent], a[i]
		i = parent
	}
}

func (h *pairHeap) pop() pairEntry {
	a := *h
	top := a[0]
	last := len(a) - 1
	a[0] = a[last]
	a = a[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(a) && a.less(l, m) {
			m = l
		}
		if r < len(a) && a.less(r, m) {
			m = r
		}
		if m == i {
			break
		}
		a[i], a[m] = a[m], a[i]
		i = m
	}
	*h = a
	return top
}
