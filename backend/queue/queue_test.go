package queue

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newQueue(t *testing.T, cfg Config) *Queue {
	t.Helper()
	q, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close(context.Background()) })
	return q
}

// gate blocks a job until released, so tests control the order of events
// without sleeping.
type gate struct {
	once    sync.Once
	started chan struct{}
	release chan struct{}
}

func newGate() *gate { return &gate{started: make(chan struct{}), release: make(chan struct{})} }

func (g *gate) run(ctx context.Context) error {
	g.once.Do(func() { close(g.started) })
	select {
	case <-g.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestRoundRobinAcrossClients(t *testing.T) {
	q := newQueue(t, Config{Workers: 1, MaxQueued: 100, MaxPerClient: 100})
	block := newGate()
	first, err := q.Submit(Job{Client: "hog", Run: block.run})
	if err != nil {
		t.Fatal(err)
	}
	<-block.started
	var mu sync.Mutex
	var order []string
	record := func(name string) func(context.Context) error {
		return func(context.Context) error {
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			return nil
		}
	}
	var tickets []*Ticket
	for i := range 5 {
		tk, err := q.Submit(Job{Client: "hog", Run: record(fmt.Sprintf("hog%d", i))})
		if err != nil {
			t.Fatal(err)
		}
		tickets = append(tickets, tk)
	}
	var lastPos int
	small, err := q.Submit(Job{Client: "small", Run: record("small"), OnPosition: func(p int) { lastPos = p }})
	if err != nil {
		t.Fatal(err)
	}
	if lastPos != 1 {
		t.Errorf("the other client's job waits at position %d, want 1 (after one of the hog's jobs)", lastPos)
	}
	close(block.release)
	for _, tk := range append(tickets, first, small) {
		if err := tk.Err(); err != nil {
			t.Fatal(err)
		}
	}
	if order[0] != "hog0" || order[1] != "small" {
		t.Errorf("order = %v, want the small client's job second", order)
	}
}

func TestLimits(t *testing.T) {
	q := newQueue(t, Config{Workers: 1, MaxQueued: 2, MaxPerClient: 2})
	block := newGate()
	defer close(block.release)
	running, _ := q.Submit(Job{Client: "a", Run: block.run})
	<-block.started
	if _, err := q.Submit(Job{Client: "a", Run: block.run}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Submit(Job{Client: "a", Run: block.run}); !errors.Is(err, ErrClientLimit) {
		t.Errorf("third job of one client: err = %v, want ErrClientLimit", err)
	}
	if _, err := q.Submit(Job{Client: "b", Run: block.run}); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Submit(Job{Client: "c", Run: block.run}); !errors.Is(err, ErrBusy) {
		t.Errorf("past MaxQueued: err = %v, want ErrBusy", err)
	}
	if w, r := q.Len(); w != 2 || r != 1 {
		t.Errorf("Len = %d waiting, %d running", w, r)
	}
	running.Cancel()
	if err := running.Err(); !errors.Is(err, ErrCancelled) {
		t.Errorf("cancelled running job: err = %v", err)
	}
	if _, err := New(Config{Workers: -1}); err == nil {
		t.Error("negative workers accepted")
	}
}

func TestCancelWaitingJobNeverRuns(t *testing.T) {
	q := newQueue(t, Config{Workers: 1})
	block := newGate()
	q.Submit(Job{Client: "a", Run: block.run})
	<-block.started
	ran := false
	tk, _ := q.Submit(Job{Client: "b", Run: func(context.Context) error { ran = true; return nil }})
	tk.Cancel()
	if err := tk.Err(); !errors.Is(err, ErrCancelled) {
		t.Errorf("err = %v", err)
	}
	close(block.release)
	q.Close(context.Background())
	if ran {
		t.Error("a cancelled waiting job ran")
	}
}

func TestTimeout(t *testing.T) {
	q := newQueue(t, Config{Workers: 1, JobTimeout: 20 * time.Millisecond})
	tk, _ := q.Submit(Job{Client: "a", Run: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }})
	if err := tk.Err(); !errors.Is(err, ErrTimeout) {
		t.Errorf("err = %v, want ErrTimeout", err)
	}
}

func TestJobErrorIsReturned(t *testing.T) {
	q := newQueue(t, Config{})
	boom := errors.New("boom")
	tk, _ := q.Submit(Job{Client: "a", Run: func(context.Context) error { return boom }})
	if err := tk.Err(); !errors.Is(err, boom) {
		t.Errorf("err = %v", err)
	}
}

func TestCloseCancelsEverything(t *testing.T) {
	q, _ := New(Config{Workers: 2})
	a, b := newGate(), newGate()
	ta, _ := q.Submit(Job{Client: "a", Run: a.run})
	tb, _ := q.Submit(Job{Client: "b", Run: b.run})
	<-a.started
	<-b.started
	tw, _ := q.Submit(Job{Client: "c", Run: a.run})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	q.Close(ctx)
	for _, tk := range []*Ticket{ta, tb, tw} {
		if err := tk.Err(); !errors.Is(err, ErrClosed) {
			t.Errorf("err = %v, want ErrClosed", err)
		}
	}
	if _, err := q.Submit(Job{Client: "d", Run: a.run}); !errors.Is(err, ErrClosed) {
		t.Errorf("submit after close: %v", err)
	}
}

func TestManyClientsAllComplete(t *testing.T) {
	q := newQueue(t, Config{Workers: 2, MaxQueued: 1000, MaxPerClient: 10})
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	for c := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var ts []*Ticket
			for range 3 {
				tk, err := q.Submit(Job{Client: fmt.Sprint(c), Run: func(context.Context) error { return nil }})
				if err != nil {
					t.Error(err)
					return
				}
				ts = append(ts, tk)
			}
			for _, tk := range ts {
				if tk.Err() == nil {
					mu.Lock()
					done++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	if done != 150 {
		t.Errorf("%d of 150 jobs completed", done)
	}
}

func TestPanickingJobFailsAloneAndWorkerSurvives(t *testing.T) {
	q := newQueue(t, Config{Workers: 1})
	tk, _ := q.Submit(Job{Client: "a", Run: func(context.Context) error { panic("engine exploded") }})
	if err := tk.Err(); !errors.Is(err, ErrPanic) {
		t.Fatalf("err = %v, want ErrPanic", err)
	}
	next, _ := q.Submit(Job{Client: "a", Run: func(context.Context) error { return nil }})
	if err := next.Err(); err != nil {
		t.Errorf("the job after a panic: %v", err)
	}
}

// TestPickedBeforeOthersMove: OnPicked runs when a worker takes a job and
// before the job behind it learns its new place, so a count kept by
// OnPicked and the places the queue reports never disagree; Position
// follows the job out of line, taken or cancelled.
func TestPickedBeforeOthersMove(t *testing.T) {
	q := newQueue(t, Config{Workers: 1})
	block := newGate()
	running, err := q.Submit(Job{Client: "a", Run: block.run})
	if err != nil {
		t.Fatal(err)
	}
	<-block.started
	var events []string // appended under the queue's lock only
	next, err := q.Submit(Job{Client: "a", Run: func(context.Context) error { return nil },
		OnPicked: func() { events = append(events, "next picked") }})
	if err != nil {
		t.Fatal(err)
	}
	behind, err := q.Submit(Job{Client: "b", Run: func(context.Context) error { return nil },
		OnPosition: func(p int) { events = append(events, fmt.Sprintf("behind at %d", p)) }})
	if err != nil {
		t.Fatal(err)
	}
	gone, err := q.Submit(Job{Client: "c", Run: func(context.Context) error { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	if got := []int{running.Position(), next.Position(), behind.Position(), gone.Position()}; got[0] != -1 || got[1] != 0 || got[2] != 1 || got[3] != 2 {
		t.Errorf("positions %v, want -1 (running), 0, 1, 2", got)
	}
	gone.Cancel()
	if p := gone.Position(); p != -1 {
		t.Errorf("a cancelled job is at position %d, want -1", p)
	}
	close(block.release)
	for _, tk := range []*Ticket{running, next, behind} {
		if err := tk.Err(); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"behind at 1", "next picked", "behind at 0"}
	if fmt.Sprint(events) != fmt.Sprint(want) {
		t.Errorf("events %q, want %q", events, want)
	}
	if p := next.Position(); p != -1 {
		t.Errorf("a finished job is at position %d, want -1", p)
	}
}
