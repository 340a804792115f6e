package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"reword/backend/cluster"
	"reword/backend/diffusion"
	"reword/shared/edit"
	"reword/shared/limits"
	"reword/shared/protocol"
)

// TestOneAddressKeepsOnlyItsSocketCap: one address opening 200 sockets
// gets SocketsPerAddress of them, the others a 429 that says why; other
// addresses still connect, up to the total cap (503 beyond it); a closed
// socket frees its place.
func TestOneAddressKeepsOnlyItsSocketCap(t *testing.T) {
	ts := newTestServer(t, withoutModel(t), func(c *Config) { c.MaxSockets = limits.SocketsPerAddress + 2 })
	var open []*client
	for i := range 200 {
		c, err := ts.dialWith(t, "127.0.3.1", nil)
		var r *refusal
		switch {
		case err == nil:
			open = append(open, c)
		case errors.As(err, &r) && r.status == http.StatusTooManyRequests && strings.Contains(r.body, "too many sockets from your address"):
		default:
			t.Fatalf("socket %d: %v", i, err)
		}
	}
	if len(open) != limits.SocketsPerAddress {
		t.Fatalf("one address kept %d of 200 sockets; its cap is %d", len(open), limits.SocketsPerAddress)
	}
	// Another address still gets in, up to the server's total.
	ts.connectFrom(t, "127.0.3.2")
	ts.connectFrom(t, "127.0.3.3")
	_, err := ts.dialWith(t, "127.0.3.4", nil)
	var r *refusal
	if !errors.As(err, &r) || r.status != http.StatusServiceUnavailable || !strings.Contains(r.body, "sockets open, its limit") {
		t.Fatalf("a socket past the total cap: %v", err)
	}
	// Closing one of the first address's sockets frees its place.
	open[0].ws.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := ts.dialWith(t, "127.0.3.1", nil)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a closed socket never freed its place: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestForwardedForOnlyFromTrustedProxies: behind a trusted proxy each
// forwarded address is its own client; from any other peer the header is
// ignored, however it varies.
func TestForwardedForOnlyFromTrustedProxies(t *testing.T) {
	ts := newTestServer(t, withoutModel(t), func(c *Config) {
		c.SocketsPerAddress = 2
		c.TrustedProxies = []string{"127.0.4.1"}
	})
	dial := func(from, forwarded string) error {
		h := http.Header{}
		h.Set("X-Forwarded-For", forwarded)
		_, err := ts.dialWith(t, from, h)
		return err
	}
	for i, tc := range []struct {
		from, forwarded string
		ok              bool
	}{
		{"127.0.4.1", "198.51.100.1", true},
		{"127.0.4.1", "198.51.100.1", true},
		{"127.0.4.1", "198.51.100.1", false}, // that client's third
		{"127.0.4.1", "198.51.100.2", true},  // another client of the proxy
		{"127.0.4.1", "6.6.6.6, 198.51.100.1", false},
		{"127.0.4.2", "198.51.100.3", true}, // not a proxy: the peer is the client
		{"127.0.4.2", "198.51.100.4", true},
		{"127.0.4.2", "198.51.100.5", false},
	} {
		err := dial(tc.from, tc.forwarded)
		if (err == nil) != tc.ok {
			t.Errorf("socket %d from %s forwarding %q: %v, want accepted=%v", i, tc.from, tc.forwarded, err, tc.ok)
		}
	}
}

// TestJobsPerAddressCountEverySocket: MaxPerClient bounds an address's
// requests across all its sockets; another address is not affected.
func TestJobsPerAddressCountEverySocket(t *testing.T) {
	ts := newEditServer(t, cluster.Settings{}, nil)
	s1, s2 := ts.connectFrom(t, "127.0.5.1"), ts.connectFrom(t, "127.0.5.1")
	s1.send(protocol.TypeRun, "a1", protocol.Run{Spec: spec(1, 150)})
	s1.until(protocol.TypeStarted)
	for i, c := range []*client{s1, s2, s2} {
		c.send(protocol.TypeRun, fmt.Sprint("a", i+2), protocol.Run{Spec: spec(uint64(2+i), 2)})
		c.until(protocol.TypeQueued)
	}
	s2.send(protocol.TypeRun, "a5", protocol.Run{Spec: spec(9, 2)})
	if e, ok := s2.answer("a5").Payload.(*protocol.Error); !ok || e.Code != protocol.CodeTooMany || !strings.Contains(e.Message, "from your address") {
		t.Fatalf("the address's fifth request: %+v", e)
	}
	other := ts.connectFrom(t, "127.0.5.2")
	other.send(protocol.TypeRun, "b1", protocol.Run{Spec: spec(10, 2)})
	if _, last := other.until(protocol.TypeQueued, protocol.TypeError); last.Type != protocol.TypeQueued {
		t.Fatalf("another address's request: %+v", last.Payload)
	}
	s1.send(protocol.TypeCancel, "a1", protocol.Cancel{})
	if _, last := other.until(protocol.TypeResult, protocol.TypeError); last.Type != protocol.TypeResult {
		t.Errorf("another address's request after the cancel: %+v", last.Payload)
	}
	// Ended requests free their places: once its requests have ended, the
	// address may send again (an end is counted just after its last
	// message is sent, hence the retries).
	s1.until(protocol.TypeResult)
	s2.until(protocol.TypeResult)
	s2.until(protocol.TypeResult)
	for try := 0; ; try++ {
		s2.send(protocol.TypeRun, fmt.Sprint("again", try), protocol.Run{Spec: spec(11, 2)})
		_, last := s2.until(protocol.TypeResult, protocol.TypeError)
		if e, ok := last.Payload.(*protocol.Error); ok && e.Code == protocol.CodeTooMany && try < 50 {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		if last.Type != protocol.TypeResult {
			t.Errorf("the address's request once its others ended: %+v", last.Payload)
		}
		return
	}
}

// answer returns the first JSON message about request id.
func (c *client) answer(id string) *protocol.Message {
	c.t.Helper()
	for {
		if e := c.next(); e.msg != nil && e.msg.ID == id {
			return e.msg
		}
	}
}

// recorder is the tiny model's engine noting the seed of every edit it
// runs, in order.
type recorder struct {
	*diffusion.Engine
	mu    sync.Mutex
	seeds []uint64
}

func (r *recorder) Edit(ctx context.Context, s edit.Spec, opts diffusion.RunOptions, onPreview func(diffusion.Preview)) (*diffusion.Result, error) {
	r.mu.Lock()
	r.seeds = append(r.seeds, *s.Seed)
	r.mu.Unlock()
	return r.Engine.Edit(ctx, s, opts, onPreview)
}

func (r *recorder) order() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seeds)
}

// TestClientsTakeTurnsByAddress: two sockets of one address are one client
// in the admission queue. A's first edit runs and its second waits in the
// stream (the admission window); A's third and fourth, sent on its two
// sockets, and then B's one wait in admission: B goes after A's third,
// not after one edit of each of A's sockets.
func TestClientsTakeTurnsByAddress(t *testing.T) {
	rec := &recorder{}
	ts := newEditServer(t, cluster.Settings{}, func(e *diffusion.Engine) cluster.Engine { rec.Engine = e; return rec })
	a1, a2 := ts.connectFrom(t, "127.0.6.1"), ts.connectFrom(t, "127.0.6.1")
	b := ts.connectFrom(t, "127.0.6.2")
	a1.send(protocol.TypeRun, "first", protocol.Run{Spec: spec(1, 150)})
	a1.until(protocol.TypeStarted)
	for _, r := range []struct {
		c    *client
		id   string
		seed uint64
	}{{a2, "second", 2}, {a1, "third", 3}, {a2, "fourth", 4}, {b, "b", 5}} {
		r.c.send(protocol.TypeRun, r.id, protocol.Run{Spec: spec(r.seed, 2)})
		r.c.until(protocol.TypeQueued)
	}
	a1.send(protocol.TypeCancel, "first", protocol.Cancel{})
	for _, c := range []*client{a1, a2, a2, b} {
		if _, last := c.until(protocol.TypeResult); last.Type != protocol.TypeResult {
			t.Fatalf("%+v", last.Payload)
		}
	}
	if got, want := rec.order(), []uint64{1, 2, 3, 5, 4}; !slices.Equal(got, want) {
		t.Errorf("edits ran in the order of seeds %v, want %v (B between A's third and fourth)", got, want)
	}
}
