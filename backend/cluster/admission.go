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
// stream interleaves the gateways' turns. Clients are identified per
// gateway (by socket), so there is no fairness between clients of
// different gateways beyond that interleaving.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"reword/backend/queue"
	"reword/shared/protocol"
)

// admission is one model's admission queue at one gateway.
type admission struct {
	q *queue.Queue
	// publishing counts the jobs that have left the queue and are being
	// published: in no one's queue position and not yet in the stream's
	// pending count, yet ahead of every job still in admission.
	publishing atomic.Int64
}

// admit puts j in its model's admission queue. It fails with a
// *protocol.Error when the queue is full (busy), when the client has
// MaxPerClient jobs there already (too_many), or when the gateway is
// shutting down.
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
		a = &admission{q: q}
		g.admissions[j.model] = a
	}
	g.jobs[j] = struct{}{}
	g.mu.Unlock()
	t, err := a.q.Submit(queue.Job{
		Client: j.client,
		Run:    func(ctx context.Context) error { j.publish(ctx, a); return nil },
		// Called under the queue's lock: only record and wake.
		OnPosition: func(p int) {
			j.admitPos.Store(int64(p))
			j.wakePositions()
		},
	})
	if err != nil {
		return admissionError(err, s)
	}
	j.mu.Lock()
	j.ticket = t
	ended := j.ended
	j.mu.Unlock()
	if ended {
		t.Cancel() // ended (gateway closing) before it had its ticket
	}
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

// publish is the job's turn: it runs on one of the admission queue's
// workers, publishes the job to the stream, and holds that worker (the
// window slot) until a worker takes the job, the job ends, or ctx (the
// ticket) is cancelled.
func (j *Job) publish(ctx context.Context, a *admission) {
	if j.isEnded() {
		return
	}
	g := j.g
	j.admitPos.Store(-1)
	a.publishing.Add(1)
	msg := &nats.Msg{Subject: jobSubject(j.model), Header: nats.Header{headerJob: []string{j.ID}}, Data: j.body}
	ack, err := g.js.PublishMsg(ctx, msg, jetstream.WithMsgID(j.ID))
	if err == nil && !ack.Duplicate {
		j.published(ack.Sequence)
	}
	g.forgetState(j.model) // the stream's pending count just changed
	a.publishing.Add(-1)
	switch {
	case err != nil:
		if j.isEnded() {
			return // cancelled or closed while publishing
		}
		if strings.Contains(err.Error(), "maximum messages exceeded") {
			err = errStreamFull
		}
		j.finish(admissionError(err, g.cfg.Settings))
		return
	case ack.Duplicate:
		// The same job was published before, by this or another
		// gateway: attach to it. Its message is not this gateway's to
		// count in the window.
		j.attach(ctx, ack.Sequence)
		return
	}
	j.wakePositions()
	select {
	case <-j.takenCh:
	case <-j.done:
	case <-ctx.Done():
	}
}

// published records the stream sequence of the job's own message. A job
// that ended while it was being published (cancelled, or its gateway
// closing) is taken back out of the stream: nobody follows it any more.
func (j *Job) published(seq uint64) {
	j.mu.Lock()
	if j.ended {
		j.mu.Unlock()
		j.withdraw(seq)
		return
	}
	j.seq = seq
	// Under j.mu, so that finish (which reads seq under j.mu) either
	// sees the sequence and removes the entry, or ran before and the
	// entry is never made.
	j.g.mu.Lock()
	j.g.bySeq[seq] = j
	j.g.mu.Unlock()
	j.mu.Unlock()
}

// attach follows a job that was already in the stream under the same id.
// It is still there (waiting, or running with this gateway now listening),
// or it has ended: with a stored result, or without one (cancelled or
// failed), in which case this request id cannot be reused.
func (j *Job) attach(ctx context.Context, seq uint64) {
	g := j.g
	if j.isEnded() {
		return
	}
	if _, err := g.stream.GetMsg(ctx, seq); errors.Is(err, jetstream.ErrMsgNotFound) {
		if res, ok := storedResult(ctx, g.cfg.Store, j.ID); ok {
			j.deliver(res)
			return
		}
		j.finish(&protocol.Error{Code: protocol.CodeDuplicateID, Field: "id",
			Message: "this request id was used for the same run, which was cancelled or failed: send it with a new id"})
		return
	}
	j.mu.Lock()
	if !j.ended {
		j.seq = seq
		g.mu.Lock()
		g.bySeq[seq] = j
		g.mu.Unlock()
	}
	j.mu.Unlock()
	j.wakePositions()
}

// forgetState drops the cached consumer state of model, so that the next
// position read sees a publish that just happened.
func (g *Gateway) forgetState(model string) {
	g.mu.Lock()
	delete(g.states, model)
	g.mu.Unlock()
}

// publishing reports how many jobs of model this gateway is publishing.
func (g *Gateway) publishing(model string) int64 {
	g.mu.Lock()
	a := g.admissions[model]
	g.mu.Unlock()
	if a == nil {
		return 0
	}
	return a.publishing.Load()
}

// Drain stops admitting jobs and ends every job no worker has taken yet
// (waiting in admission, or published and waiting in the stream) with
// the shutdown error; jobs running on workers are still relayed until
// they end or Close. A process that runs its own workers (role all)
// drains its gateway before shutting the server down, so that the time
// given to running edits is not spent waiting for jobs that no worker
// will start. Jobs left in the stream stay there for the next worker.
func (g *Gateway) Drain() {
	g.mu.Lock()
	g.draining = true
	var waiting []*Job
	for j := range g.jobs {
		if !j.taken.Load() {
			waiting = append(waiting, j)
		}
	}
	g.mu.Unlock()
	for _, j := range waiting {
		j.finish(errShutdown())
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
