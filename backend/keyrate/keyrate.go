// Package keyrate limits how often each key — a client address — may do
// something: a token bucket per key, in bounded memory. A key idle long
// enough for its bucket to fill up again is forgotten, which changes
// nothing (a new bucket starts full); past MaxKeys active keys the least
// recently seen are forgotten too, which gives those keys a fresh burst
// rather than letting memory grow without bound.
package keyrate

import (
	"container/list"
	"fmt"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// MaxKeys bounds the buckets a Limiter keeps.
const MaxKeys = 100_000

// Limiter holds one token bucket per key.
type Limiter struct {
	every rate.Limit
	burst int
	// full is how long an idle bucket takes to fill up.
	full time.Duration

	mu      sync.Mutex
	buckets map[string]*list.Element // key → element of lru (value *bucket)
	lru     *list.List               // front = most recently seen
	max     int
}

type bucket struct {
	key  string
	lim  *rate.Limiter
	seen time.Time
}

// New allows each key perMinute events a minute, in bursts of up to
// burst.
func New(perMinute float64, burst int) (*Limiter, error) {
	if perMinute <= 0 || burst < 1 {
		return nil, fmt.Errorf("keyrate: want a positive rate and a burst ≥ 1, got %v a minute and %d", perMinute, burst)
	}
	every := rate.Limit(perMinute / 60)
	return &Limiter{
		every: every, burst: burst,
		full:    time.Duration(float64(burst) / float64(every) * float64(time.Second)),
		buckets: map[string]*list.Element{}, lru: list.New(), max: MaxKeys,
	}, nil
}

// Allow takes a token of key's bucket. When there is none it reports
// how long until there will be one.
func (l *Limiter) Allow(key string) (ok bool, retryAfter time.Duration) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	el, found := l.buckets[key]
	if !found {
		el = l.lru.PushFront(&bucket{key: key, lim: rate.NewLimiter(l.every, l.burst)})
		l.buckets[key] = el
	}
	b := el.Value.(*bucket)
	b.seen = now
	l.lru.MoveToFront(el)
	l.forgetLocked(now)
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// forgetLocked drops the buckets that are full again, then the least
// recently seen beyond max.
func (l *Limiter) forgetLocked(now time.Time) {
	for {
		el := l.lru.Back()
		if el == nil {
			return
		}
		b := el.Value.(*bucket)
		if now.Sub(b.seen) < l.full && l.lru.Len() <= l.max {
			return
		}
		l.lru.Remove(el)
		delete(l.buckets, b.key)
	}
}

// Len reports the buckets kept.
func (l *Limiter) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}
