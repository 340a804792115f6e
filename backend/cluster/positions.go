package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"reword/shared/protocol"
)

// A waiting job's place in line, and the watch for a lost outcome: both
// read NATS, so the job's loop starts the reads on helper goroutines and
// takes the answers as events.

// positionPoll is how often a waiting job's queue position is refreshed.
const positionPoll = 500 * time.Millisecond

// outcomePoll is how often a published job checks that its stream message
// is still there (see checkStream).
const outcomePoll = 2 * time.Second

// stateTTL is how long one read of a consumer serves every waiting job's
// position, so that a long admission queue, woken at once by a change,
// costs one request per model rather than one per job. positionSettle,
// longer, is how long a changed position waits to be read again.
const (
	stateTTL       = 20 * time.Millisecond
	positionSettle = 2 * stateTTL
)

// readPosition starts a read of the job's place in line, until a worker
// has started it. A read in flight is followed by another when it
// returns, so that no change is missed.
func (j *Job) readPosition(s *jobState) {
	switch {
	case s.ended || s.started:
		return
	case s.seq == 0 && s.admitPos < 0:
		return // being published: the next look finds it in the stream
	case s.reading:
		s.readAgain = true
		return
	}
	s.reading = true
	inAdmission := s.seq == 0
	j.helper(func() { j.inbox.post(j.readPlace(inAdmission)) })
}

// readPlace reads what the job's place is made of. In the stream, that is
// the consumer's state. In admission, the place adds up the job's place in
// the admission queue and every job ahead of the queue: the ones this
// gateway is publishing and the stream's undelivered ones. Those counts
// live in the queue, the admission and NATS and are read one after the
// other, and a job moving from one to the next in between (a publish, a
// few milliseconds) would be counted twice or not at all. So the read is
// settled only if no job moved while it was taken and none was in flight
// (a publish may already have put it in the stream's count or not yet);
// a settled read then has nothing being published to count. Only jobs
// that went through admission read their place (readPosition).
func (j *Job) readPlace(inAdmission bool) consumerRead {
	a := j.admission
	moves, flying := a.movement()
	if inAdmission && flying > 0 {
		// Unsettled whatever NATS says: a pick wakes every waiting job,
		// and none of them should cost a request.
		return consumerRead{admitPos: -1, ok: true, unsettled: true}
	}
	r := consumerRead{admitPos: -1}
	if inAdmission {
		r.admitPos = j.ticket.Position()
	}
	r.st, r.ok = j.g.consumerState(j.model, moves)
	if inAdmission {
		after, _ := a.movement()
		r.unsettled = after != moves
	}
	return r
}

// positionRead takes in a read of the job's place. A changed place is
// read again after positionSettle and sent only if it holds: jobs of
// other gateways move between their admission and the stream unseen. An
// unsettled read is tried again after positionSettle too.
func (j *Job) positionRead(s *jobState, r consumerRead) {
	s.reading = false
	if s.readAgain {
		s.readAgain = false
		defer j.readPosition(s)
	}
	if !r.ok || s.started {
		return
	}
	if r.unsettled {
		s.settle.Reset(positionSettle)
		return
	}
	p, taken, ok := s.position(r.st, r.admitPos)
	if taken {
		j.markTaken(s) // delivered: a worker is starting it
	}
	switch {
	case !ok:
	case s.candidate >= 0 && p == s.candidate:
		s.candidate = -1
		if p != s.lastPos {
			s.lastPos = p
			if j.ev.Queued != nil {
				j.ev.Queued(protocol.Queued{Position: p})
			}
		}
	case p != s.lastPos:
		s.candidate = p
		s.settle.Reset(positionSettle)
	default:
		s.candidate = -1
	}
}

// position is the number of jobs of the same model that will be handed to
// a worker before the job, and whether the consumer has delivered it
// already. In the stream, it is the undelivered jobs with a lower stream
// sequence, from the workers' consumer: the last sequence it delivered
// and the count of undelivered jobs. With one model per stream sequence
// range it is exact; jobs of other models or cancelled jobs between the
// last delivered one and the job can make it overcount until they are
// passed. In admission (admitPos, read with st while no job of this
// gateway was being published), it is the job's place in the admission
// queue plus every job of the model undelivered in the stream (from any
// gateway), all of which go first.
func (s *jobState) position(st consumerState, admitPos int) (pos int, taken, ok bool) {
	switch {
	case s.seq == 0 && admitPos < 0:
		return 0, false, false
	case s.seq == 0:
		return admitPos + int(st.pending), false, true
	case s.seq <= st.delivered:
		return 0, true, true
	}
	ahead := min(int(s.seq-st.delivered-1), int(st.pending)-1)
	return max(ahead, 0), false, true
}

// checkStream starts the watch's look at the job's message. A job's events
// travel on core NATS, at most once: a gateway reconnecting to another
// node, or its interest not yet known on the worker's node, can drop them.
// A worker stores a result before it acks the job, and the ack removes
// the job's message from the work-queue stream; so once the message is
// gone and, a poll later, no outcome has arrived, the store has the
// result, or the job ended without one (failed or cancelled on its
// worker) and there is nothing left to wait for.
func (j *Job) checkStream(s *jobState) {
	if s.ended || s.seq == 0 || s.checking {
		return // in admission, or being published
	}
	s.checking = true
	seq, fetch := s.seq, s.gone
	j.helper(func() {
		ctx, cancel := context.WithTimeout(context.Background(), outcomePoll)
		defer cancel()
		var c streamCheck
		_, err := j.g.stream.GetMsg(ctx, seq)
		c.gone = errors.Is(err, jetstream.ErrMsgNotFound)
		c.failed = err != nil && !c.gone // NATS failing over, for example: look again next time
		if c.gone && fetch {
			c.fetched = true
			// A store that fails here ends the job as one without a
			// result (an internal error: send it again), never a wait
			// without end on a store that does not come back.
			c.res, _ = storedResult(ctx, j.g.cfg.Store, j.ID)
		}
		j.inbox.post(c)
	})
}

// streamChecked takes in a look at the job's message: present (waiting or
// running), gone once (acked or terminated just now: its outcome may still
// be on the way, so it gets one more poll), or gone again.
func (j *Job) streamChecked(s *jobState, c streamCheck) {
	s.checking = false
	switch {
	case c.failed:
	case !c.gone:
		s.gone = false
	case !c.fetched:
		s.gone = true
	case c.res != nil:
		j.g.log.Warn("a job's result event was lost; answering from the store", "job", j.ID[:12])
		j.end(s, nil, c.res)
	default:
		j.g.log.Warn("a job left the stream without a result and its outcome event was lost", "job", j.ID[:12])
		j.end(s, &protocol.Error{Code: protocol.CodeInternal,
			Message: "the job left the queue without a result (it failed or was cancelled or removed) and the reason was lost on the way: send it again with a new id"}, nil)
	}
}

// consumerState is what a position needs from a model's consumer.
type consumerState struct {
	at        time.Time // when its read began
	moves     uint64    // the admission's moves when its read began
	delivered uint64    // stream sequence of the last job delivered to a worker
	pending   uint64    // jobs not yet delivered
}

// consumerState reads model's consumer, or serves a read younger than
// stateTTL that began after the admission's last move (moves), so that a
// job that left admission since is never missing from it.
func (g *Gateway) consumerState(model string, moves uint64) (consumerState, bool) {
	g.mu.Lock()
	st, ok := g.states[model]
	g.mu.Unlock()
	if ok && st.moves == moves && time.Since(st.at) < stateTTL {
		return st, true
	}
	begun := time.Now()
	c, err := g.consumer(model)
	if err != nil {
		return consumerState{}, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, err := c.Info(ctx)
	if err != nil {
		return consumerState{}, false
	}
	st = consumerState{at: begun, moves: moves, delivered: info.Delivered.Stream, pending: info.NumPending}
	g.mu.Lock()
	if old, ok := g.states[model]; !ok || !old.at.After(begun) {
		g.states[model] = st // a read that began later stays
	}
	g.mu.Unlock()
	return st, true
}

func (g *Gateway) consumer(model string) (jetstream.Consumer, error) {
	g.mu.Lock()
	c := g.consumers[model]
	g.mu.Unlock()
	if c != nil {
		return c, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := g.js.Consumer(ctx, StreamName, consumerName(model))
	if err != nil {
		return nil, err
	}
	g.mu.Lock()
	g.consumers[model] = c
	g.mu.Unlock()
	return c, nil
}
