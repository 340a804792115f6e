package cluster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"reword/shared/protocol"
)

// startLog records the order in which jobs start, and what each job's
// client saw, in order.
type startLog struct {
	mu     sync.Mutex
	starts []string
	events map[string][]string // job name → "queued N" / "started" / "result"
}

func newStartLog() *startLog { return &startLog{events: map[string][]string{}} }

func (l *startLog) record(name, what string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events[name] = append(l.events[name], what)
	if what == "started" {
		l.starts = append(l.starts, name)
	}
}

func (l *startLog) eventsOf(name string) Events {
	return Events{
		Queued:  func(q protocol.Queued) { l.record(name, fmt.Sprint("queued ", q.Position)) },
		Started: func(protocol.Started) { l.record(name, "started") },
		Result:  func(*protocol.Result) { l.record(name, "result") },
	}
}

// positions returns the queue positions name was told, in order, and
// fails if one came after its start.
func (l *startLog) positions(t *testing.T, name string) []int {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var ps []int
	started := false
	for _, e := range l.events[name] {
		var p int
		if _, err := fmt.Sscanf(e, "queued %d", &p); err == nil {
			if started {
				t.Errorf("%s: a queued position after started: %v", name, l.events[name])
			}
			ps = append(ps, p)
		}
		started = started || e == "started"
	}
	return ps
}

// published waits until j is in the stream.
func published(t *testing.T, j *Job) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if j.seq.Load() != 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s was not published within 30 s", j.ID[:12])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// taken waits until a worker has taken j.
func taken(t *testing.T, j *Job) {
	t.Helper()
	published(t, j)
	deadline := time.Now().Add(30 * time.Second)
	for !j.taken.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("no worker took job %s within 30 s", j.ID[:12])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAdmissionTakesTurns: with one worker, client A sends four jobs and
// then client B one. The stream is FIFO, but the gateway publishes in the
// fair order: B's job runs after A's running job, A's job already in the
// stream (the admission window) and one more of A's (A's turn in the
// round-robin when B arrived), and before A's last. Each client is told
// positions that match that order.
func TestAdmissionTakesTurns(t *testing.T) {
	c := newTestCluster(t, 1, 1, 1, Settings{AckWait: 2 * time.Second})
	g := c.gateways[0]
	log := newStartLog()
	jobs := map[string]*Job{}
	submit := func(client, name string, steps int) {
		t.Helper()
		j, err := g.submit(context.Background(), c.model, client, name, c.resolved(g, runOf(uint64(len(jobs)+1), steps)), log.eventsOf(name))
		must(t, err)
		jobs[name] = j
	}
	// A1 runs long enough for everything below to be queued behind it.
	submit("A", "A1", 40)
	for _, name := range []string{"A2", "A3", "A4"} {
		submit("A", name, 2)
	}
	// A1 taken by the worker, A2 waiting in the stream (the window of
	// one), A3 and A4 waiting in admission.
	published(t, jobs["A2"])
	submit("B", "B1", 2)
	for name, j := range jobs {
		if err := waitJob(t, j, 2*time.Minute); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if want := []string{"A1", "A2", "A3", "B1", "A4"}; !slices.Equal(log.starts, want) {
		t.Fatalf("start order %v, want %v", log.starts, want)
	}
	// B1 had A2 and A3 ahead of it, then one, then none.
	b := log.positions(t, "B1")
	if len(b) == 0 || b[0] != 2 || b[len(b)-1] != 0 || !slices.IsSortedFunc(b, func(x, y int) int { return y - x }) {
		t.Errorf("B1 was told positions %v, want 2 first, 0 last, never rising", b)
	}
	// A4 was behind A2 and A3, then B1 took a turn ahead of it: at most
	// 3 (the first report may already include B1), down to 0.
	a4 := log.positions(t, "A4")
	if len(a4) == 0 || slices.Max(a4) != 3 || a4[len(a4)-1] != 0 {
		t.Errorf("A4 was told positions %v, want 3 once B1 arrived, down to 0", a4)
	}
	if tot := c.totals(); tot.Completed != 5 {
		t.Errorf("workers %+v, want 5 completed", tot)
	}
}

// TestAdmissionLimitsAndCancel: a client's jobs in admission are capped
// (too_many), the admission queue is bounded (busy), a job cancelled
// while in admission never reaches the stream or a worker, and closing
// the gateway ends the jobs still in admission with the shutdown error,
// unpublished.
func TestAdmissionLimitsAndCancel(t *testing.T) {
	c := newTestCluster(t, 1, 1, 1, Settings{AckWait: 2 * time.Second, MaxQueued: 2, MaxPerClient: 2})
	g := c.gateways[0]
	log := newStartLog()
	submit := func(client, name string, steps int) (*Job, error) {
		return g.submit(context.Background(), c.model, client, name, c.resolved(g, runOf(uint64(len(name)*7+int(name[1])), steps)), log.eventsOf(name))
	}
	x, err := submit("X", "X1", 60)
	must(t, err)
	taken(t, x)
	c1, err := submit("C", "C1", 2) // to the stream (the window)
	must(t, err)
	published(t, c1)
	c2, err := submit("C", "C2", 2) // waits in admission
	must(t, err)
	_, err = submit("C", "C3", 2)
	if e, ok := err.(*protocol.Error); !ok || e.Code != protocol.CodeTooMany || !strings.Contains(e.Message, "too many jobs from this client") {
		t.Errorf("C's third job: %v, want a too_many error", err)
	}
	d1, err := submit("D", "D1", 2) // admission now holds 2 waiting: full
	must(t, err)
	_, err = submit("E", "E1", 2)
	if e, ok := err.(*protocol.Error); !ok || e.Code != protocol.CodeBusy || !strings.Contains(e.Message, "queue is full") {
		t.Errorf("a job past the admission bound: %v, want a busy error", err)
	}
	if w, r := g.Len(); w != 3 || r != 1 {
		t.Errorf("gateway Len = %d waiting, %d running; want 3 (C1, C2, D1) and 1 (X1)", w, r)
	}

	// Cancelled in admission: ends at once, never published.
	c2.Cancel()
	if e, ok := waitJob(t, c2, 5*time.Second).(*protocol.Error); !ok || e.Code != protocol.CodeCancelled {
		t.Errorf("C2 cancelled in admission ended with %v", e)
	}
	// Its place in C's quota is free again.
	c4, err := submit("C", "C4", 2)
	must(t, err)

	// Closing the gateway ends every job it follows; those in admission
	// (C4, D1) were never published. X1 and C1 go on on the worker.
	g.Close()
	for _, j := range []*Job{c4, d1, c1, x} {
		if e, ok := waitJob(t, j, 5*time.Second).(*protocol.Error); !ok || e.Code != protocol.CodeShutdown {
			t.Errorf("job %s at Close ended with %v, want shutdown", j.ID[:12], e)
		}
	}
	for _, j := range []*Job{c2, c4, d1} {
		if seq := j.seq.Load(); seq != 0 {
			t.Errorf("job %s, ended in admission, was published as %d", j.ID[:12], seq)
		}
	}
	// The worker runs exactly what was published: X1 and C1.
	deadline := time.Now().Add(2 * time.Minute)
	for c.totals().Completed < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the worker did not finish X1 and C1: %+v", c.totals())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // anything else would be delivered by now
	cons, err := g.consumer(c.model)
	must(t, err)
	info, err := cons.Info(context.Background())
	must(t, err)
	if info.Delivered.Consumer != 2 || info.NumPending != 0 {
		t.Errorf("the worker was handed %d jobs, %d left; want X1 and C1 only", info.Delivered.Consumer, info.NumPending)
	}
	if n := c.storedJobs([]string{c2.ID, c4.ID, d1.ID}); n != 0 {
		t.Errorf("%d jobs ended in admission stored a result", n)
	}
	if tot := c.totals(); tot.Completed != 2 || tot.Cancelled != 0 {
		t.Errorf("workers %+v, want X1 and C1 completed, nothing else", tot)
	}
}

// TestAdmissionSettingsValidated: a bad admit window or per-client limit
// is refused with an error that names it, before touching NATS.
func TestAdmissionSettingsValidated(t *testing.T) {
	for _, tc := range []struct {
		s    Settings
		want string
	}{
		{Settings{AdmitWindow: -1}, "admit window must be ≥ 1"},
		{Settings{AdmitWindow: 5, MaxQueued: 2}, "admit window 5 is larger than max queued 2"},
		{Settings{MaxPerClient: -3}, "max per client must be ≥ 1, got -3"},
	} {
		_, err := NewGateway(context.Background(), GatewayConfig{Settings: tc.s})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.s, err, tc.want)
		}
	}
	s, err := Settings{}.withDefaults()
	must(t, err)
	if s.AdmitWindow != 1 || s.MaxPerClient != 4 {
		t.Errorf("defaults: window %d, per client %d; want 1 and 4", s.AdmitWindow, s.MaxPerClient)
	}
}

// TestPlaceUnsettledWhileAJobFlies: a job's place in admission adds its
// place in the queue to the stream's undelivered jobs, read at two
// moments; a job of the gateway between the two (published, not yet
// acknowledged) may be in the stream's count or not yet, so such a read
// is unsettled and tells the client nothing, and once the job lands a
// fresh read counts it exactly.
func TestPlaceUnsettledWhileAJobFlies(t *testing.T) {
	c := newTestCluster(t, 1, 1, 1, Settings{AckWait: 2 * time.Second})
	g := c.gateways[0]
	submit := func(client string, seed uint64, steps int) *Job {
		t.Helper()
		j, err := g.submit(context.Background(), c.model, client, fmt.Sprint(client, seed), c.resolved(g, runOf(seed, steps)), Events{})
		must(t, err)
		t.Cleanup(func() { j.Cancel(); <-j.Done() })
		return j
	}
	running := submit("A", 1, 60)
	taken(t, running)
	published(t, submit("A", 2, 2)) // waits in the stream: the window of one
	waiting := submit("B", 3, 2)    // waits in admission, first in line
	settled := func() consumerRead {
		t.Helper()
		r := waiting.readPlace(true)
		if !r.ok || r.unsettled {
			t.Fatalf("a read with nothing in flight: %+v", r)
		}
		return r
	}
	if r := settled(); r.admitPos != 0 || r.st.pending != 1 {
		t.Fatalf("read place %d in admission with %d undelivered; want 0 and the one job in the stream", r.admitPos, r.st.pending)
	}
	a := waiting.admission
	ghost := &Job{}
	a.takeOff(ghost)
	if r := waiting.readPlace(true); !r.unsettled {
		t.Errorf("a read while a job flies is settled: %+v", r)
	}
	moves, _ := a.movement()
	a.land(ghost)
	landed := time.Now()
	a.land(ghost) // landing twice moves nothing
	if after, flying := a.movement(); after != moves+1 || flying != 0 {
		t.Errorf("after landing: %d moves (want %d), %d flying", after, moves+1, flying)
	}
	if r := settled(); r.st.at.Before(landed) {
		t.Errorf("the read after the landing served a consumer state read at %v, before it (%v)", r.st.at, landed)
	}

	// A job whose turn comes after it ended lands at once: flying, it
	// would leave every place in line unsettled.
	ended := &Job{done: make(chan struct{})}
	close(ended.done)
	a.takeOff(ended)
	ended.turn(context.Background(), a)
	if _, flying := a.movement(); flying != 0 {
		t.Errorf("%d jobs flying after a job that had ended took its turn", flying)
	}
	settled()

	// A job picked and then cancelled before its turn ran never runs it
	// (the queue skips a cancelled ticket), so turn does not land it: its
	// loop does, as it exits. Taking off by hand and cancelling while in
	// line leaves it in that state: flying, with a ticket that ends
	// without a turn.
	a.takeOff(waiting)
	waiting.Cancel()
	<-waiting.Done()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		_, flying := a.movement()
		if flying == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d jobs still flying 5 s after a job picked and cancelled before its turn ended", flying)
		}
	}
}
