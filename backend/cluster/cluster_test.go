package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"reword/backend/diffusion"
	"reword/backend/store"
	"reword/models/tiny/tinytest"
	"reword/shared/edit"
	"reword/shared/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// testCluster is a 3-node NATS cluster on loopback with gateways and
// workers, each with its own NATS connection and its own store on one
// shared folder, as separate machines sharing a bucket would have.
type testCluster struct {
	t        testing.TB
	nats     *LocalCluster
	storeDir string
	settings Settings
	gateways []*Gateway
	workers  []*testWorker
	model    string
}

type testWorker struct {
	*Worker
	conn   *nats.Conn
	cancel context.CancelFunc
	done   chan struct{}
}

func newTestCluster(t testing.TB, nodes, gateways, workers int, s Settings) *testCluster {
	t.Helper()
	nc, err := StartLocalCluster(nodes, t.TempDir())
	must(t, err)
	c := &testCluster{t: t, nats: nc, storeDir: t.TempDir(), settings: s}
	t.Cleanup(func() {
		for _, w := range c.workers {
			w.kill()
		}
		for _, g := range c.gateways {
			g.Close()
			g.cfg.Conn.Close()
			g.cfg.Store.Close()
		}
		nc.Shutdown()
	})
	for range gateways {
		c.addGateway()
	}
	for range workers {
		c.addWorker()
	}
	return c
}

func (c *testCluster) connect() *nats.Conn {
	c.t.Helper()
	conn, err := nats.Connect(c.nats.URLs(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	must(c.t, err)
	return conn
}

func (c *testCluster) openStore() *store.Store {
	c.t.Helper()
	st, err := store.Open(context.Background(), c.storeDir, 0)
	must(c.t, err)
	return st
}

func (c *testCluster) addGateway() *Gateway {
	c.t.Helper()
	g, err := NewGateway(context.Background(), GatewayConfig{Conn: c.connect(), Store: c.openStore(), Settings: c.settings, Logger: quiet})
	must(c.t, err)
	c.gateways = append(c.gateways, g)
	return g
}

func (c *testCluster) addWorker() *testWorker {
	c.t.Helper()
	eng, err := diffusion.Load(tinytest.Dir(c.t), diffusion.Options{Threads: 1, Instrument: true})
	must(c.t, err)
	conn := c.connect()
	st := c.openStore()
	w, err := NewWorker(context.Background(), WorkerConfig{
		Name: fmt.Sprint("w", len(c.workers)+1), Conn: conn, Engine: eng, Store: st, Settings: c.settings, Logger: quiet,
	})
	must(c.t, err)
	c.model = eng.Defaults().Model
	ctx, cancel := context.WithCancel(context.Background())
	tw := &testWorker{Worker: w, conn: conn, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(tw.done)
		w.Run(ctx)
		eng.Close()
		st.Close()
	}()
	c.workers = append(c.workers, tw)
	return tw
}

// kill stops the worker the way a crash does: its connection drops first,
// so it can neither ack nor hand back its job; JetStream redelivers it
// after AckWait. Safe to call twice.
func (w *testWorker) kill() {
	w.conn.Close()
	w.cancel()
	<-w.done
}

func runOf(seed uint64, steps int) protocol.Run {
	return protocol.Run{Spec: edit.Spec{Source: "a red circle", Targets: []string{"a blue circle"}, Seed: &seed, Steps: &steps}}
}

// resolved fills the run's defaults as a gateway does before submitting.
func (c *testCluster) resolved(g *Gateway, run protocol.Run) protocol.Run {
	c.t.Helper()
	e, err := g.Model(context.Background(), "")
	must(c.t, err)
	r, err := run.Spec.Resolve(e.Defaults)
	must(c.t, err)
	run.Spec = r.Spec()
	return run
}

// outcome records what one job's client saw.
type outcome struct {
	mu       sync.Mutex
	started  chan struct{}
	queued   []int
	previews int
	result   *protocol.Result
}

func (o *outcome) events() Events {
	var once sync.Once
	return Events{
		Queued: func(q protocol.Queued) { o.mu.Lock(); o.queued = append(o.queued, q.Position); o.mu.Unlock() },
		Started: func(protocol.Started) {
			once.Do(func() { close(o.started) })
		},
		Preview: func([]byte, int) { o.mu.Lock(); o.previews++; o.mu.Unlock() },
		Result:  func(r *protocol.Result) { o.mu.Lock(); o.result = r; o.mu.Unlock() },
	}
}

func newOutcome() *outcome { return &outcome{started: make(chan struct{})} }

func waitJob(t testing.TB, j *Job, d time.Duration) error {
	t.Helper()
	select {
	case <-j.Done():
		return j.Err()
	case <-time.After(d):
		t.Fatalf("job %s did not end within %v", j.ID[:12], d)
		return nil
	}
}

func waitStarted(t testing.TB, o *outcome, d time.Duration) {
	t.Helper()
	select {
	case <-o.started:
	case <-time.After(d):
		t.Fatalf("the job did not start within %v", d)
	}
}

// storedJobs counts the job result records in the shared store.
func (c *testCluster) storedJobs(ids []string) int {
	st := c.openStore()
	defer st.Close()
	n := 0
	for _, id := range ids {
		if _, err := storedResult(context.Background(), st, id); err == nil {
			n++
		}
	}
	return n
}

func (c *testCluster) totals() (s WorkerStats) {
	for _, w := range c.workers {
		ws := w.Stats()
		s.Completed += ws.Completed
		s.FromStore += ws.FromStore
		s.Cancelled += ws.Cancelled
		s.Failed += ws.Failed
		s.Redelivered += ws.Redelivered
	}
	return s
}

// TestSixtyJobsExactlyOnce: 20 clients send 3 jobs each through 2
// gateways to 3 workers on a 3-node cluster; every job completes, exactly
// once, with its result in the shared store and its images servable by
// both gateways' stores.
func TestSixtyJobsExactlyOnce(t *testing.T) {
	c := newTestCluster(t, 3, 2, 3, Settings{Replicas: 3, AckWait: 2 * time.Second})
	type sent struct {
		job *Job
		out *outcome
	}
	var (
		mu   sync.Mutex
		all  []sent
		wg   sync.WaitGroup
		errs = make(chan error, 60)
	)
	for client := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := c.gateways[client%2]
			for k := range 3 {
				o := newOutcome()
				run := c.resolved(g, runOf(uint64(100*client+k), 2))
				j, err := g.submit(context.Background(), c.model, fmt.Sprint("client", client), fmt.Sprintf("client%d-run%d", client, k), run, o.events())
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				all = append(all, sent{j, o})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range all {
		if err := waitJob(t, s.job, 3*time.Minute); err != nil {
			t.Fatalf("job %s: %v", s.job.ID[:12], err)
		}
		if s.out.result == nil || len(s.out.result.Images) != 2 || s.out.result.Cached {
			t.Fatalf("job %s result %+v", s.job.ID[:12], s.out.result)
		}
		for _, im := range s.out.result.Images {
			for _, g := range c.gateways {
				if !g.cfg.Store.HasImage(im.Hash) {
					t.Fatalf("gateway cannot serve image %s of job %s", im.Hash[:12], s.job.ID[:12])
				}
			}
		}
		ids = append(ids, s.job.ID)
	}
	if n := c.storedJobs(ids); n != 60 {
		t.Errorf("%d of 60 job results stored", n)
	}
	tot := c.totals()
	if tot.Completed != 60 || tot.FromStore != 0 || tot.Failed != 0 || tot.Redelivered != 0 {
		t.Errorf("workers: %+v; want exactly 60 completed and nothing else", tot)
	}
	busy := 0
	for _, w := range c.workers {
		if w.Stats().Completed > 0 {
			busy++
		}
	}
	t.Logf("per worker: %+v / %+v / %+v", c.workers[0].Stats(), c.workers[1].Stats(), c.workers[2].Stats())
	if busy < 2 {
		t.Errorf("only %d of 3 workers ran jobs", busy)
	}
	// The same run again, from the other gateway, is answered from the
	// store without running.
	o := newOutcome()
	g := c.gateways[1]
	j, err := g.submit(context.Background(), c.model, "client0", "client0-run0", c.resolved(g, runOf(0, 2)), o.events())
	must(t, err)
	must(t, waitJob(t, j, 10*time.Second))
	if !o.result.Cached || c.totals().Completed != 60 {
		t.Errorf("a finished job was not answered from the store: cached=%v, completed %d", o.result.Cached, c.totals().Completed)
	}
}

// longestRunning returns the worker running a job, waiting for one.
func (c *testCluster) runner(jobID string) *testWorker {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for _, w := range c.workers {
			for _, id := range w.Running() {
				if id == jobID {
					return w
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Fatalf("no worker runs job %s", jobID[:12])
	return nil
}

// TestWorkerKilledMidJob: the worker running a job dies; after AckWait the
// job is redelivered to another worker and finishes there, once.
func TestWorkerKilledMidJob(t *testing.T) {
	c := newTestCluster(t, 3, 1, 2, Settings{Replicas: 3, AckWait: time.Second})
	g := c.gateways[0]
	o := newOutcome()
	j, err := g.submit(context.Background(), c.model, "c", "long", c.resolved(g, runOf(7, 40)), o.events())
	must(t, err)
	waitStarted(t, o, 30*time.Second)
	victim := c.runner(j.ID)
	victim.kill()
	must(t, waitJob(t, j, 2*time.Minute))
	if o.result == nil || len(o.result.Images) != 2 {
		t.Fatalf("result %+v", o.result)
	}
	var survivor *testWorker
	for _, w := range c.workers {
		if w != victim {
			survivor = w
		}
	}
	if s := survivor.Stats(); s.Completed != 1 || s.Redelivered != 1 {
		t.Errorf("survivor %+v, want the redelivered job completed", s)
	}
	if s := victim.Stats(); s.Completed != 0 {
		t.Errorf("the killed worker completed %d jobs", s.Completed)
	}
	if n := c.storedJobs([]string{j.ID}); n != 1 {
		t.Errorf("%d results stored", n)
	}
}

// TestNATSNodeKilled: a NATS node of the three dies while jobs run; the
// clients fail over and every job completes.
func TestNATSNodeKilled(t *testing.T) {
	c := newTestCluster(t, 3, 2, 2, Settings{Replicas: 3, AckWait: 2 * time.Second})
	var jobs []*Job
	var outs []*outcome
	for i := range 8 {
		g := c.gateways[i%2]
		o := newOutcome()
		j, err := g.submit(context.Background(), c.model, fmt.Sprint("client", i), fmt.Sprint("n", i), c.resolved(g, runOf(uint64(i), 4)), o.events())
		must(t, err)
		jobs, outs = append(jobs, j), append(outs, o)
	}
	waitStarted(t, outs[0], 30*time.Second)
	c.nats.Nodes[0].Shutdown()
	var ids []string
	for i, j := range jobs {
		if err := waitJob(t, j, 2*time.Minute); err != nil {
			t.Fatalf("job %d after the node died: %v", i, err)
		}
		ids = append(ids, j.ID)
	}
	if n := c.storedJobs(ids); n != len(jobs) {
		t.Errorf("%d of %d results stored", n, len(jobs))
	}
	c.nats.Nodes = c.nats.Nodes[1:] // already shut down
}

// TestCancelReachesWorker: cancelling a running job stops it on the worker
// that runs it; cancelling a waiting job removes it before any worker
// takes it. Neither stores a result.
func TestCancelReachesWorker(t *testing.T) {
	c := newTestCluster(t, 1, 1, 2, Settings{AckWait: time.Second})
	g := c.gateways[0]
	running := newOutcome()
	j1, err := g.submit(context.Background(), c.model, "c", "run-a", c.resolved(g, runOf(1, 50)), running.events())
	must(t, err)
	waitStarted(t, running, 30*time.Second)
	w := c.runner(j1.ID)
	// Occupy the other worker too, so the next job waits in the stream.
	busy := newOutcome()
	j2, err := g.submit(context.Background(), c.model, "c", "run-b", c.resolved(g, runOf(2, 50)), busy.events())
	must(t, err)
	waitStarted(t, busy, 30*time.Second)
	waiting := newOutcome()
	j3, err := g.submit(context.Background(), c.model, "c", "run-c", c.resolved(g, runOf(3, 2)), waiting.events())
	must(t, err)
	time.Sleep(2 * positionPoll)
	waiting.mu.Lock()
	q := append([]int(nil), waiting.queued...)
	waiting.mu.Unlock()
	if len(q) == 0 || q[len(q)-1] != 0 {
		t.Errorf("waiting job positions %v, want to end at 0 (next)", q)
	}

	// The waiting job first: cancelled after the running one, it could be
	// taken by the worker the first cancellation frees before it leaves
	// the stream (seen under load).
	for _, j := range []*Job{j3, j1} {
		j.Cancel()
		e, ok := waitJob(t, j, 5*time.Second).(*protocol.Error)
		if !ok || e.Code != protocol.CodeCancelled {
			t.Errorf("cancelled job ended with %v", e)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for w.Stats().Cancelled != 1 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if s := w.Stats(); s.Cancelled != 1 || len(w.Running()) != 0 && w.Running()[0] == j1.ID {
		t.Errorf("the worker running the job: %+v, running %v", s, w.Running())
	}
	j2.Cancel()
	waitJob(t, j2, 5*time.Second)
	time.Sleep(2 * time.Second) // would be enough for the 2-step job to run
	if n := c.storedJobs([]string{j1.ID, j2.ID, j3.ID}); n != 0 {
		t.Errorf("%d cancelled jobs stored a result", n)
	}
	if tot := c.totals(); tot.Completed != 0 || tot.Cancelled != 2 {
		t.Errorf("workers %+v, want 2 cancelled while running and none completed", tot)
	}
}

// TestGatewayDiesClientRefetches: a client whose gateway dies mid-job
// reconnects to another gateway and sends the same request again: it gets
// the job's result, computed once.
func TestGatewayDiesClientRefetches(t *testing.T) {
	c := newTestCluster(t, 1, 2, 1, Settings{AckWait: time.Second})
	first := newOutcome()
	g0, g1 := c.gateways[0], c.gateways[1]
	run := c.resolved(g0, runOf(5, 20))
	j, err := g0.submit(context.Background(), c.model, "c", "req-42", run, first.events())
	must(t, err)
	waitStarted(t, first, 30*time.Second)
	g0.Close()
	if e, ok := waitJob(t, j, time.Second).(*protocol.Error); !ok || e.Code != protocol.CodeShutdown {
		t.Fatalf("job on the closed gateway ended with %v", e)
	}
	again := newOutcome()
	j2, err := g1.submit(context.Background(), c.model, "c", "req-42", run, again.events())
	must(t, err)
	must(t, waitJob(t, j2, time.Minute))
	if again.result == nil || len(again.result.Images) != 2 {
		t.Fatalf("refetched result %+v", again.result)
	}
	if tot := c.totals(); tot.Completed != 1 || tot.FromStore != 0 {
		t.Errorf("workers %+v, want the job computed exactly once", tot)
	}
}

// TestLostEventsStillEnd: a job's events travel on core NATS, at most
// once. With every event of a job lost (its subscription dropped while it
// waits in the stream), the gateway still ends it: with the result the
// worker stored, or, for a job that failed on its worker, with an error.
func TestLostEventsStillEnd(t *testing.T) {
	// A window of 2, so that both jobs wait in the stream at once.
	c := newTestCluster(t, 1, 1, 1, Settings{AckWait: 2 * time.Second, AdmitWindow: 2})
	g := c.gateways[0]
	good := c.resolved(g, runOf(7, 2))
	bad := good
	bad.Spec.Steps = new(int) // zero steps: the worker refuses the spec
	c.workers[0].kill()       // the jobs wait in the stream until the next worker
	submit := func(id string, run protocol.Run) (*Job, *outcome) {
		o := newOutcome()
		j, err := g.submit(context.Background(), c.model, "client", id, run, o.events())
		must(t, err)
		published(t, j)
		must(t, j.sub.Unsubscribe()) // from here on, every event of the job is lost
		return j, o
	}
	jGood, oGood := submit("lost-result", good)
	jBad, _ := submit("lost-error", bad)
	w := c.addWorker()

	must(t, waitJob(t, jGood, time.Minute))
	if oGood.result == nil || len(oGood.result.Images) != 2 {
		t.Fatalf("result %+v", oGood.result)
	}
	select {
	case <-oGood.started:
		t.Error("the started event arrived although the job's subscription was dropped")
	default:
	}
	var pe *protocol.Error
	if err := waitJob(t, jBad, time.Minute); !errors.As(err, &pe) || pe.Code != protocol.CodeInternal {
		t.Fatalf("the failed job whose error event was lost ended with %v; want an internal error", err)
	}
	if st := w.Stats(); st.Completed != 1 || st.Failed != 1 {
		t.Errorf("worker: %+v; want one job completed and one failed", st)
	}
}
