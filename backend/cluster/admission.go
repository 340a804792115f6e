package cluster

// Fair admission.
//
// A JetStream work-queue consumer hands jobs to workers in the order they
// were published: first come, first served. Published as soon as they
// arrive, one client's ten jobs would run before another client's one.
// So a gateway does not publish a job when it arrives: it puts it in an
// admission queue (one per model, a backend/queue.Queue), where clients
// take turns and each client's jobs and the waiting jobs are bounded. A
// job leaves admission
// by being published, and the gateway lets at most Settings.AdmitWindow
// of its jobs per model wait in the stream for a worker: the queue's
// workers are the window's slots, and a slot stays taken until a worker
// takes the job (its started event, or the consumer's delivered sequence
// reaching it) or the job ends. The stream therefore stays short and
// the order in which workers take jobs is the fair order.
//
// Across gateways: each gateway keeps its own clients fair, and since
// each has at most AdmitWindow jobs per model waiting in the stream, the
// stream interleaves the gateways' turns. A client is what the server
// says it is (its address, see backend/clientaddr), and only one
// gateway's queue sees it, so there is no fairness between clients of
// different gateways beyond that interleaving.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"reword/backend/queue"
	"reword/backend/store"
	"reword/shared/protocol"
)

// admission is one model's admission queue at one gateway.
type admission struct {
	q *queue.Queue

	mu sync.Mutex
	// flying holds the jobs that have left the queue and are being
	// published: in no one's queue position, yet ahead of every job still
	// in admission, and at any moment maybe in the stream's pending count,
	// maybe not yet.
	flying map[*Job]struct{}
	// moves counts the jobs that took off (left the queue) or landed (in
	// the stream, or not at all): a job's place in line, read from the
	// queue and the stream at two moments, holds only if no job moved in
	// between.
	moves uint64
}

// takeOff counts j as flying; the queue calls it, under its lock, as j
// leaves the line.
func (a *admission) takeOff(j *Job) {
	a.mu.Lock()
	a.flying[j] = struct{}{}
	a.moves++
	a.mu.Unlock()
}

// land counts j as no longer flying, once it is in the stream or will not
// be; a job that did not fly is left alone.
func (a *admission) land(j *Job) {
	a.mu.Lock()
	if _, ok := a.flying[j]; ok {
		delete(a.flying, j)
		a.moves++
	}
	a.mu.Unlock()
}

// movement is how many jobs have moved so far and how many fly now.
func (a *admission) movement() (moves uint64, flying int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.moves, len(a.flying)
}

// admit puts j in its model's admission queue and in the gateway's table
// of jobs, and counts its loop (which the caller starts). It fails with a *protocol.Error when the queue is full (busy),
// when the client has MaxPerClient jobs there already (too_many), or when
// the gateway is shutting down; j has then ended.
func (g *Gateway) admit(j *Job) error {
	s := g.cfg.Settings
	g.mu.Lock()
	if g.closed || g.draining {
		g.mu.Unlock()
		return errShutdown()
	}
	a := g.admissions[j.model]
	if a == nil {
		q, err := queue.New(queue.Config{Workers: s.AdmitWindow, MaxQueued: s.MaxQueued, MaxPerClient: s.MaxPerClient})
		if err != nil {
			g.mu.Unlock()
			return fmt.Errorf("cluster: admission queue: %w", err)
		}
		a = &admission{q: q, flying: map[*Job]struct{}{}}
		g.admissions[j.model] = a
	}
	j.admission = a
	g.jobs[j] = struct{}{}
	// The job's loop is counted here, with the gateway not closed, so
	// that Close's wait always counts it (Close waits for the job's end
	// first, and its loop ends it).
	g.loops.Add(1)
	g.mu.Unlock()
	t, err := a.q.Submit(queue.Job{
		Client:     j.client,
		Run:        func(ctx context.Context) error { j.turn(ctx, a); return nil },
		OnPosition: func(p int) { j.inbox.post(admitted{p}) }, // under the queue's lock: post only
		OnPicked:   func() { a.takeOff(j) },                   // under the queue's lock too
	})
	if err != nil {
		g.mu.Lock()
		delete(g.jobs, j)
		g.mu.Unlock()
		g.loops.Done() // no loop will run
		j.err = admissionError(err, s)
		close(j.done) // for Close, which may wait for it already
		return j.err
	}
	j.ticket = t
	return nil
}

// admissionError is the protocol error of a job that admission refused,
// or that the stream refused when it was published: the one place where
// queue and stream limits become what a client is told.
func admissionError(err error, s Settings) error {
	switch {
	case errors.Is(err, queue.ErrBusy), errors.Is(err, errStreamFull):
		return &protocol.Error{Code: protocol.CodeBusy, Message: fmt.Sprintf("the job queue is full (%d jobs waiting): try again shortly", s.MaxQueued)}
	case errors.Is(err, queue.ErrClientLimit):
		return &protocol.Error{Code: protocol.CodeTooMany, Message: fmt.Sprintf("too many jobs from this client (%d waiting): wait for one to start or cancel one", s.MaxPerClient)}
	case errors.Is(err, queue.ErrClosed):
		return errShutdown()
	}
	return &protocol.Error{Code: protocol.CodeInternal, Message: "queueing the job failed: " + err.Error()}
}

// errStreamFull is JetStream refusing a publish to the full job stream
// (Settings.MaxQueued messages, DiscardNew).
var errStreamFull = errors.New("the job stream is full")

// turn is the job's turn in admission. It runs on one of the admission
// queue's workers — a slot of the window — publishes the job, posts how
// that went to the job's loop, and holds the slot until a worker takes
// the job, the job ends, or ctx (the ticket) is cancelled. A job that was
// in the stream already (sent before, by this or another gateway) does
// not hold the slot: its message is not this gateway's to count.
func (j *Job) turn(ctx context.Context, a *admission) {
	// Whatever happens, the job lands: ended before its turn (it will not
	// be published), or a publish that panicked. Until it lands, no
	// waiting job's place is read as settled.
	defer a.land(j)
	select {
	case <-j.done:
		return
	default:
	}
	j.inbox.post(turn{})
	p := j.publish(ctx)
	a.land(j) // before the job's loop hears how it went
	j.inbox.post(p)
	if p.err != nil || p.duplicate {
		return
	}
	select {
	case <-j.slotFree:
	case <-ctx.Done():
	}
}

// publish publishes the job to the stream, with its id as the message id.
// For a job the stream had already, it looks whether its message is still
// there, and if not, for its stored result. A job that finished but whose
// stored result lost an image (evicted) is published again under a
// message id of its own, so that it runs again; two gateways doing so at
// once still publish it once, since both derive the same id.
func (j *Job) publish(ctx context.Context) publication {
	p := j.publishAs(ctx, j.ID)
	if p.err != nil || !p.duplicate || p.inStream || p.stored != nil {
		return p
	}
	lookup, cancel := context.WithTimeout(ctx, storeLookupTimeout)
	_, err := j.g.cfg.Store.Record(lookup, jobRecord(j.ID))
	cancel()
	switch {
	case errors.Is(err, store.ErrNotFound):
		return p // cancelled or failed: never finished
	case err != nil:
		return publication{err: storeLookupError(err)}
	}
	return j.publishAs(ctx, j.ID+".again."+strconv.FormatUint(p.seq, 10))
}

func (j *Job) publishAs(ctx context.Context, msgID string) publication {
	msg := &nats.Msg{Subject: jobSubject(j.model), Header: nats.Header{headerJob: []string{j.ID}}, Data: j.body}
	ack, err := j.g.js.PublishMsg(ctx, msg, jetstream.WithMsgID(msgID))
	switch {
	case err != nil && strings.Contains(err.Error(), "maximum messages exceeded"):
		return publication{err: errStreamFull}
	case err != nil:
		return publication{err: err}
	case !ack.Duplicate:
		return publication{seq: ack.Sequence}
	}
	p := publication{seq: ack.Sequence, duplicate: true, inStream: true}
	if _, err := j.g.stream.GetMsg(ctx, ack.Sequence); errors.Is(err, jetstream.ErrMsgNotFound) {
		p.inStream = false
		lookup, cancel := context.WithTimeout(ctx, storeLookupTimeout)
		res, err := storedResult(lookup, j.g.cfg.Store, j.ID)
		cancel()
		switch {
		case err == nil:
			p.stored = res
		case !errors.Is(err, store.ErrNotFound):
			return publication{err: storeLookupError(err)}
		}
	}
	return p
}

// storeLookupTimeout bounds each look into the store while a job holds
// an admission slot: a store that does not answer must not hold the slot
// until the client gives up.
const storeLookupTimeout = 10 * time.Second

// storeLookupError is the error of a job sent again whose earlier run's
// result could not be looked up: the store failed, so whether that run
// finished is unknown, and the client is told to retry rather than that
// the id was spent.
func storeLookupError(err error) error {
	return fmt.Errorf("looking up the result of the earlier run with this id: %w", err)
}

// Drain stops admitting jobs and ends every job no worker has taken yet
// (waiting in admission, or published and waiting in the stream) with
// the shutdown error, each on its own goroutine, at once; jobs running on
// workers are still relayed until they end or Close. A server drains its
// executor when it shuts down, so that the time given to running edits
// is not spent waiting for jobs that no worker will start. Jobs left in
// the stream stay there for the next worker.
func (g *Gateway) Drain() {
	g.mu.Lock()
	g.draining = true
	jobs := make([]*Job, 0, len(g.jobs))
	for j := range g.jobs {
		jobs = append(jobs, j)
	}
	g.mu.Unlock()
	for _, j := range jobs {
		j.inbox.post(ending{err: errShutdown(), unlessTaken: true})
	}
}

// Len reports this gateway's jobs: waiting (in admission, or in the
// stream until a worker takes them) and running (taken by a worker).
func (g *Gateway) Len() (waiting, running int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for j := range g.jobs {
		if j.taken.Load() {
			running++
		} else {
			waiting++
		}
	}
	return waiting, running
}
