package preview

import "sync"

// Pump delivers previews to a callback from its own goroutine. Offer never
// blocks: it replaces any preview of the same row that the consumer has not
// taken yet, so a slow consumer sees the newest image of each row instead of
// a backlog, and the sampling loop runs at full speed.
type Pump struct {
	deliver func(Image)

	mu      sync.Mutex
	pending map[int]Image // newest undelivered preview per row
	order   []int         // rows in the order they first became pending
	closed  bool
	wake    chan struct{}
	done    chan struct{}
}

// NewPump starts a pump that calls deliver for each preview. deliver runs
// on one goroutine, never concurrently with itself.
func NewPump(deliver func(Image)) *Pump {
	p := &Pump{deliver: deliver, pending: map[int]Image{}, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go p.loop()
	return p
}

// Offer queues img for delivery, dropping an older undelivered preview of
// the same row. The pump keeps img.RGB: the caller must not reuse it.
func (p *Pump) Offer(img Image) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	if _, ok := p.pending[img.Row]; !ok {
		p.order = append(p.order, img.Row)
	}
	p.pending[img.Row] = img
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// Close delivers what is pending, stops the pump and waits for the last
// callback to return; after it, deliver is never called again.
func (p *Pump) Close() {
	p.mu.Lock()
	already := p.closed
	p.closed = true
	p.mu.Unlock()
	if !already {
		close(p.wake)
	}
	<-p.done
}

func (p *Pump) loop() {
	defer close(p.done)
	for range p.wake {
		for {
			img, ok := p.take()
			if !ok {
				break
			}
			p.deliver(img)
		}
	}
	// Close was called: deliver the last pending previews.
	for {
		img, ok := p.take()
		if !ok {
			return
		}
		p.deliver(img)
	}
}

func (p *Pump) take() (Image, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.order) == 0 {
		return Image{}, false
	}
	row := p.order[0]
	p.order = p.order[1:]
	img := p.pending[row]
	delete(p.pending, row)
	return img, true
}
