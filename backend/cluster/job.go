package cluster

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"reword/backend/queue"
	"reword/shared/protocol"
)

// A gateway's job is one goroutine (Job.loop) that owns the job's state.
// Everything that happens to the job arrives as an event in its inbox, in
// order: its place in admission, its turn and its publication (from the
// admission queue's worker), the worker's messages (from NATS), a cancel
// (from the client), the gateway draining or closing, JetStream giving up
// on it, and the answers of the NATS reads the loop starts itself (the
// consumer's state for queue positions, the stream for a lost outcome).
// Everything the client learns goes out from the loop, in order, through
// the job's Events. Nothing else writes the job's state, so no lock guards
// it; the inbox never blocks whoever posts (some post under the admission
// queue's lock).

// Job follows one submitted job on the gateway side: first in the
// gateway's admission queue, then in the stream, then on a worker.
type Job struct {
	ID     string
	g      *Gateway
	model  string
	client string
	body   []byte // the run envelope published to the stream
	ev     Events
	sub    *nats.Subscription
	ticket *queue.Ticket // the admission ticket; nil for a job answered from the store
	// admission is the model's admission queue the job went through; nil
	// for a job answered from the store.
	admission *admission
	inbox     inbox

	// Published by the loop for readers outside it.
	taken    atomic.Bool   // a worker has the job (Gateway.Len)
	seq      atomic.Uint64 // the stream sequence of its message, 0 before
	done     chan struct{} // closed when the job has ended
	err      error         // how it ended, once done is closed
	slotFree chan struct{} // closed when it no longer holds a window slot: taken or ended
}

// Done is closed when the job has ended.
func (j *Job) Done() <-chan struct{} { return j.done }

// Err waits for the end and returns nil when a result was delivered, or a
// *protocol.Error saying why not.
func (j *Job) Err() error {
	<-j.done
	return j.err
}

// Cancel stops the job wherever it is: a job still in admission leaves the
// admission queue and never reaches the stream or a worker; a job waiting
// in the stream is deleted from it, and a running one is stopped on its
// worker. The job ends at once with a cancelled error.
func (j *Job) Cancel() { j.inbox.post(cancelled{}) }

// The events of a job's inbox.
type (
	// admitted: the job's place in its admission queue changed.
	admitted struct{ position int }
	// turn: the admission queue let the job go; it is being published.
	turn struct{}
	// publication: how publishing went (see Job.publish).
	publication struct {
		seq       uint64
		err       error
		duplicate bool // the stream had the job already (sent before)
		inStream  bool // a duplicate still waits or runs
		stored    *protocol.Result
	}
	// message: an event of the job's worker, from NATS.
	message struct{ m *nats.Msg }
	// cancelled: the client cancelled the job.
	cancelled struct{}
	// ending: the gateway ends the job (closing, draining, or JetStream
	// gave up on it); a drain spares a job a worker has taken.
	ending struct {
		err         error
		unlessTaken bool
	}
	// answered: the job's result, found in the store.
	answered struct{ res *protocol.Result }
	// consumerRead: what the job's place in line is made of (see
	// Job.readPlace).
	consumerRead struct {
		st       consumerState
		admitPos int // the job's place in admission when read; -1 out of it
		// ok: st was read; unsettled: jobs were moving between admission
		// and the stream, so the read says nothing about the place.
		ok, unsettled bool
	}
	// streamCheck: whether the job's message is still in the stream and,
	// when it is gone for the second time, the stored result if any.
	streamCheck struct {
		gone, failed, fetched bool
		res                   *protocol.Result
	}
)

// inbox is a job's event queue. post never blocks: the queue grows as
// needed, and the loop takes everything at once.
type inbox struct {
	mu     sync.Mutex
	events []any
	signal chan struct{} // holds one token while events wait
}

func (b *inbox) post(e any) {
	b.mu.Lock()
	b.events = append(b.events, e)
	b.mu.Unlock()
	select {
	case b.signal <- struct{}{}:
	default:
	}
}

func (b *inbox) take() []any {
	b.mu.Lock()
	defer b.mu.Unlock()
	events := b.events
	b.events = nil
	return events
}

// jobState is what the loop knows about its job.
type jobState struct {
	ended, started, slotFreed bool
	admitPos                  int    // place in admission; -1 once out (or before)
	seq                       uint64 // its stream sequence, 0 before
	// Queue positions: the last one sent, one waiting to be confirmed by
	// a second read after settle, and whether a read is in flight or due
	// again when it returns.
	lastPos, candidate int
	settle             *time.Timer
	reading, readAgain bool
	// The outcome watch: a stream check in flight, and whether the last
	// one found the message gone.
	checking, gone bool
}

// loop runs the job until it has ended and its admission turn (if any)
// has returned, so that a publication that raced with the end is still
// taken back.
func (j *Job) loop() {
	defer j.g.loops.Done()
	s := &jobState{admitPos: -1, lastPos: -1, candidate: -1, settle: time.NewTimer(time.Hour)}
	s.settle.Stop()
	defer s.settle.Stop()
	positions := time.NewTicker(positionPoll)
	defer positions.Stop()
	outcome := time.NewTicker(outcomePoll)
	defer outcome.Stop()
	var turnOver <-chan struct{} // set once the job has ended
	for {
		select {
		case <-j.inbox.signal:
			for _, e := range j.inbox.take() {
				j.handle(s, e)
			}
		case <-positions.C:
			j.readPosition(s)
		case <-s.settle.C:
			j.readPosition(s)
		case <-outcome.C:
			j.checkStream(s)
		case <-turnOver:
			for _, e := range j.inbox.take() {
				j.handle(s, e)
			}
			if j.admission != nil {
				// Picked and then cancelled before its turn ran, the job
				// took off and never landed.
				j.admission.land(j)
			}
			return
		}
		if s.ended && turnOver == nil {
			turnOver = j.turnOver()
		}
	}
}

// turnOver is closed once the job's admission ticket is finished: its
// turn (if it had one) has returned, after posting how publishing went.
func (j *Job) turnOver() <-chan struct{} {
	if j.ticket == nil {
		closed := make(chan struct{})
		close(closed)
		return closed
	}
	return j.ticket.Done()
}

// handle applies one event.
func (j *Job) handle(s *jobState, e any) {
	if p, ok := e.(publication); ok {
		j.published(s, p)
		return
	}
	if s.ended {
		return
	}
	switch e := e.(type) {
	case admitted:
		s.admitPos = e.position
		j.readPosition(s)
	case turn:
		s.admitPos = -1
	case message:
		j.relay(s, e.m)
	case cancelled:
		j.cancel(s)
	case ending:
		if !e.unlessTaken || !j.taken.Load() {
			j.end(s, e.err, nil)
		}
	case answered:
		j.end(s, nil, e.res)
	case consumerRead:
		j.positionRead(s, e)
	case streamCheck:
		j.streamChecked(s, e)
	}
}

// published takes in how the job's publication went. A job that ended
// while it was being published is taken back out of the stream: nobody
// follows it any more.
func (j *Job) published(s *jobState, p publication) {
	switch {
	case p.err != nil:
		if !s.ended {
			j.end(s, admissionError(p.err, j.g.cfg.Settings), nil)
		}
	case s.ended:
		if !p.duplicate {
			j.withdraw(p.seq)
		}
	case p.duplicate && !p.inStream && p.stored != nil:
		p.stored.Cached = true
		j.end(s, nil, p.stored)
	case p.duplicate && !p.inStream:
		j.end(s, &protocol.Error{Code: protocol.CodeDuplicateID, Field: "id",
			Message: "this request id was used for the same run, which was cancelled or failed: send it with a new id"}, nil)
	default:
		// Its own message, or the same job sent before by this or
		// another gateway, still waiting or running: follow it.
		s.seq = p.seq
		j.seq.Store(p.seq)
		j.g.mu.Lock()
		j.g.bySeq[p.seq] = j
		j.g.mu.Unlock()
		j.readPosition(s)
	}
}

// relay passes one message of the worker on to the client. Any message
// means a worker has the job (possibly the one sent earlier with the same
// id, which this job attached to).
func (j *Job) relay(s *jobState, m *nats.Msg) {
	j.markTaken(s)
	if m.Header.Get(headerKind) == kindFrame {
		if p, err := protocol.DecodePreview(m.Data); err == nil && j.ev.Preview != nil {
			j.ev.Preview(m.Data, p.Row)
		}
		return
	}
	msg, err := protocol.DecodeServer(m.Data)
	if err != nil {
		j.g.log.Error("a job event that is not a protocol message", "job", j.ID[:12], "err", err)
		return
	}
	switch p := msg.Payload.(type) {
	case *protocol.Started:
		s.started = true
		if j.ev.Started != nil {
			j.ev.Started(*p)
		}
	case *protocol.Progress:
		if j.ev.Progress != nil {
			j.ev.Progress(*p)
		}
	case *protocol.Result:
		j.end(s, nil, p)
	case *protocol.Error:
		j.end(s, p, nil)
	}
}

// cancel ends the job with the cancelled error and takes it back: out of
// the stream and off its worker when it was published, off its worker
// when it was attached (while in admission) to the same job sent earlier.
func (j *Job) cancel(s *jobState) {
	seq := s.seq
	j.end(s, &protocol.Error{Code: protocol.CodeCancelled, Message: "the request was cancelled"}, nil)
	switch {
	case seq != 0:
		j.withdraw(seq)
	case j.taken.Load():
		j.publishCancel()
	}
}

// end ends the job once with err, or with the result res (delivered
// before Done closes, so that a job ends with a result or an error, never
// both).
func (j *Job) end(s *jobState, err error, res *protocol.Result) {
	if s.ended {
		return
	}
	s.ended = true
	j.err = err
	if res != nil && j.ev.Result != nil {
		j.ev.Result(res)
	}
	j.sub.Unsubscribe()
	if j.ticket != nil {
		// Leaves the admission queue, or frees the window slot the job
		// held while waiting in the stream.
		j.ticket.Cancel()
	}
	j.g.mu.Lock()
	if s.seq != 0 && j.g.bySeq[s.seq] == j {
		delete(j.g.bySeq, s.seq)
	}
	delete(j.g.jobs, j)
	j.g.mu.Unlock()
	close(j.done)
	j.freeSlot(s)
}

// markTaken records that a worker has the job, freeing its window slot.
func (j *Job) markTaken(s *jobState) {
	if !j.taken.Swap(true) {
		j.freeSlot(s)
	}
}

func (j *Job) freeSlot(s *jobState) {
	if !s.slotFreed {
		s.slotFreed = true
		close(j.slotFree)
	}
}

// withdraw takes a published job back: it deletes the message, so that no
// worker takes it any more, then tells a worker that already took it to
// stop. Delete first, then publish: a worker that registered the job
// before the publish receives it, one that registers later finds the
// message gone (see Worker.handle).
func (j *Job) withdraw(seq uint64) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := j.g.stream.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		j.g.log.Warn("deleting a cancelled job from the stream", "job", j.ID[:12], "err", err)
	}
	j.publishCancel()
}

func (j *Job) publishCancel() {
	if err := j.g.cfg.Conn.Publish(cancelSubject(j.ID), nil); err != nil {
		j.g.log.Warn("publishing a cancel", "job", j.ID[:12], "err", err)
	}
}

// helper runs f on its own goroutine, which Gateway.Close waits for: the
// NATS reads a loop must not wait on itself.
func (j *Job) helper(f func()) {
	j.g.loops.Add(1)
	go func() {
		defer j.g.loops.Done()
		f()
	}()
}
