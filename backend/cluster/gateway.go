package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"reword/backend/queue"
	"reword/backend/store"
	"reword/shared/protocol"
)

// GatewayConfig is what a gateway needs.
type GatewayConfig struct {
	// Conn is the gateway's NATS connection; the gateway does not close it.
	Conn *nats.Conn
	// Store is the blob store shared with the workers.
	Store    *store.Store
	Settings Settings
	Logger   *slog.Logger
}

// Gateway admits jobs fairly (admission.go), submits them to the stream
// and relays each job's events to whoever submitted it.
type Gateway struct {
	cfg    GatewayConfig
	log    *slog.Logger
	js     jetstream.JetStream
	stream jetstream.Stream
	models jetstream.KeyValue

	mu         sync.Mutex
	consumers  map[string]jetstream.Consumer // model → workers' consumer
	states     map[string]consumerState      // model → last read of that consumer
	admissions map[string]*admission         // model → admission queue
	jobs       map[*Job]struct{}             // every job not ended, in admission or the stream
	bySeq      map[uint64]*Job               // published jobs not ended, by stream sequence
	draining   bool                          // Drain was called: nothing more is admitted
	closed     bool
	advisory   *nats.Subscription
}

// positionPoll is how often a waiting job's queue position is refreshed.
const positionPoll = 500 * time.Millisecond

// outcomePoll is how often a published job checks that its stream message
// is still there (see watchOutcome).
const outcomePoll = 2 * time.Second

// NewGateway sets up the stream and the models bucket.
func NewGateway(ctx context.Context, cfg GatewayConfig) (*Gateway, error) {
	s, err := cfg.Settings.withDefaults()
	if err != nil {
		return nil, err
	}
	cfg.Settings = s
	if cfg.Conn == nil || cfg.Store == nil {
		return nil, errors.New("cluster: a gateway needs a NATS connection and a store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	g := &Gateway{
		cfg: cfg, log: cfg.Logger,
		consumers: map[string]jetstream.Consumer{}, states: map[string]consumerState{},
		admissions: map[string]*admission{}, jobs: map[*Job]struct{}{}, bySeq: map[uint64]*Job{},
	}
	if g.js, err = jetstream.New(cfg.Conn); err != nil {
		return nil, fmt.Errorf("cluster: JetStream: %w", err)
	}
	if g.stream, err = ensureStream(ctx, g.js, s); err != nil {
		return nil, err
	}
	if g.models, err = modelsBucket(ctx, g.js, s); err != nil {
		return nil, err
	}
	// A job every worker it reached failed to finish (MaxDeliver
	// deliveries without an ack) is announced by JetStream; its waiting
	// client gets an error instead of waiting forever.
	g.advisory, err = cfg.Conn.Subscribe("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES."+StreamName+".*", g.onMaxDeliveries)
	if err != nil {
		return nil, fmt.Errorf("cluster: subscribing to delivery advisories: %w", err)
	}
	return g, nil
}

// errShutdown ends the jobs of a gateway that is shutting down.
func errShutdown() *protocol.Error {
	return &protocol.Error{Code: protocol.CodeShutdown, Message: "the gateway is shutting down; reconnect and send the same request again to get its result"}
}

// Close ends every job this gateway follows with the shutdown error and
// stops its subscriptions and admission queues. Jobs already in the
// stream keep running on the workers and their results stay fetchable
// from the store; jobs still in admission were never published and are
// gone. Close is safe to call more than once.
func (g *Gateway) Close() {
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return
	}
	g.closed = true
	jobs := make([]*Job, 0, len(g.jobs))
	for j := range g.jobs {
		jobs = append(jobs, j)
	}
	queues := make([]*queue.Queue, 0, len(g.admissions))
	for _, a := range g.admissions {
		queues = append(queues, a.q)
	}
	g.mu.Unlock()
	g.advisory.Unsubscribe()
	for _, j := range jobs {
		j.finish(errShutdown())
	}
	// Every admitted job has ended, so the queues' workers return at
	// once; the timeout only bounds a publish stuck on a lost NATS.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, q := range queues {
		q.Close(ctx)
	}
}

// Models lists the models that have a live worker.
func (g *Gateway) Models(ctx context.Context) ([]ModelEntry, error) {
	return liveModels(ctx, g.models)
}

// Model returns the entry of one live model, or of the only one when
// model is empty.
func (g *Gateway) Model(ctx context.Context, model string) (ModelEntry, error) {
	all, err := g.Models(ctx)
	if err != nil {
		return ModelEntry{}, err
	}
	for _, e := range all {
		if model == "" && len(all) == 1 || e.Defaults.Model == model {
			return e, nil
		}
	}
	if len(all) == 0 {
		return ModelEntry{}, ErrNoWorkers
	}
	var ids []string
	for _, e := range all {
		ids = append(ids, e.Defaults.Model)
	}
	if model == "" {
		return ModelEntry{}, fmt.Errorf("several models are served (%s): the spec must name one", strings.Join(ids, ", "))
	}
	return ModelEntry{}, fmt.Errorf("no worker serves model %q (served: %s)", model, strings.Join(ids, ", "))
}

// Events receive one job's messages. Each may be nil; they are called in
// order, from NATS's delivery goroutine (or, for a stored result found at
// publication, from the admission queue's, and for a result whose event
// was lost, from the job's outcome watch) and must not block for long.
type Events struct {
	Queued   func(protocol.Queued)
	Started  func(protocol.Started)
	Progress func(protocol.Progress)
	// Preview receives binary preview frames (protocol.EncodePreview).
	Preview func(frame []byte, row int)
	// Result receives the result; the job then ends with Err() == nil.
	Result func(*protocol.Result)
}

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
	// eventOrder orders Queued (from the position poller) against Started
	// (from NATS), so that no queued position follows "started".
	eventOrder sync.Mutex

	// admitPos is the job's place in its admission queue, -1 once the
	// queue has let it go (or before it has a place).
	admitPos atomic.Int64
	// taken is set once a worker has taken the job (its started event, or
	// the consumer's delivered sequence passing it); takenCh closes then.
	taken   atomic.Bool
	takenCh chan struct{}
	// posWake asks the position poller to look again now.
	posWake chan struct{}

	mu      sync.Mutex
	ended   bool
	err     error
	seq     uint64        // stream sequence once published; 0 before
	ticket  *queue.Ticket // the admission ticket, once Submit has it
	started bool
	done    chan struct{}
	stopPos chan struct{}
	// ready is closed when Submit has set the job up (its subscription
	// and admission ticket); events wait for it, since they can arrive as
	// soon as the job subscribes.
	ready chan struct{}
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
func (j *Job) Cancel() {
	seq, ended := j.finish(&protocol.Error{Code: protocol.CodeCancelled, Message: "the request was cancelled"})
	switch {
	case !ended:
	case seq != 0:
		j.withdraw(seq)
	case j.taken.Load():
		// Attached, while still in admission, to the same job sent
		// earlier (a reconnect): it runs on a worker already.
		j.publishCancel()
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

func (j *Job) isEnded() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.ended
}

// markTaken records that a worker has the job, freeing its admission slot.
func (j *Job) markTaken() {
	if j.taken.CompareAndSwap(false, true) {
		close(j.takenCh)
	}
}

// finish ends the job once with err (nil: a result was delivered). It
// reports the job's stream sequence at that moment (0: not published)
// and whether this call ended it.
func (j *Job) finish(err error) (seq uint64, ended bool) {
	return j.finishWith(err, nil)
}

// finishWith ends the job once with err, calling last (the result's
// callback) after the job is marked ended and before Done closes, so that
// a job ends with a result or an error, never both.
func (j *Job) finishWith(err error, last func()) (seq uint64, ended bool) {
	j.mu.Lock()
	if j.ended {
		j.mu.Unlock()
		return 0, false
	}
	j.ended = true
	j.err = err
	seq, t := j.seq, j.ticket
	j.mu.Unlock()
	if last != nil {
		last()
	}
	if j.sub != nil {
		j.sub.Unsubscribe()
	}
	close(j.stopPos)
	if t != nil {
		// Leaves the admission queue, or frees the window slot the job
		// held while waiting in the stream. Never called under j.mu: the
		// queue calls back into jobs under its own lock.
		t.Cancel()
	}
	j.g.mu.Lock()
	if seq != 0 && j.g.bySeq[seq] == j {
		delete(j.g.bySeq, seq)
	}
	delete(j.g.jobs, j)
	j.g.mu.Unlock()
	close(j.done)
	return seq, true
}

// Ticket follows a submitted job: Cancel stops it wherever it is, Err
// waits for its end (nil: the result was delivered to Events.Result).
type Ticket interface {
	Cancel()
	Err() error
}

// Submit admits a run of model for the request requestID of client, or
// attaches to the same job when it is already queued or running (sent
// before through this or another gateway), or answers from the store when
// it already has a result. client identifies who sent it (the server's
// socket), for fairness and the per-client limit in admission. run.Spec
// should be resolved, so that the job id does not depend on which
// defaults a client left out. The ticket is a *Job.
//
// Submit fails at once with a *protocol.Error when admission refuses the
// job (busy, too_many, shutdown); later failures end the job.
func (g *Gateway) Submit(ctx context.Context, model, client, requestID string, run protocol.Run, ev Events) (Ticket, error) {
	j, err := g.submit(ctx, model, client, requestID, run, ev)
	if err != nil {
		return nil, err // not a Ticket holding a nil *Job
	}
	return j, nil
}

func (g *Gateway) submit(ctx context.Context, model, client, requestID string, run protocol.Run, ev Events) (*Job, error) {
	jobID, err := JobID(requestID, run)
	if err != nil {
		return nil, err
	}
	body, err := protocol.Encode(protocol.TypeRun, requestID, run)
	if err != nil {
		return nil, err
	}
	j := &Job{
		ID: jobID, g: g, model: model, client: client, body: body, ev: ev,
		takenCh: make(chan struct{}), posWake: make(chan struct{}, 1),
		done: make(chan struct{}), stopPos: make(chan struct{}), ready: make(chan struct{}),
	}
	j.admitPos.Store(-1)
	defer close(j.ready)
	// Subscribe before anything else, so that no event of an in-flight
	// job is missed between the checks below and the first message.
	j.sub, err = g.cfg.Conn.Subscribe(eventSubject(jobID), j.onEvent)
	if err != nil {
		return nil, fmt.Errorf("cluster: subscribing to the job's events: %w", err)
	}
	// A finished job is answered at once, without taking a turn.
	if res, ok := storedResult(ctx, g.cfg.Store, jobID); ok {
		j.deliver(res)
		return j, nil
	}
	if err := g.admit(j); err != nil {
		j.finish(err) // drops the subscription; the caller never sees j
		return nil, err
	}
	go j.reportPositions()
	go j.watchOutcome()
	return j, nil
}

// watchOutcome ends a job whose outcome event was lost. A job's events
// travel on core NATS, at most once: a gateway reconnecting to another
// node, or its interest not yet known on the worker's node, can drop
// them. A worker stores a result before it acks the job, and the ack
// removes the job's message from the work-queue stream; so once the
// message is gone and, a poll later, no outcome has arrived, the store
// has the result, or the job ended without one (failed or cancelled on
// its worker) and there is nothing left to wait for.
func (j *Job) watchOutcome() {
	t := time.NewTicker(outcomePoll)
	defer t.Stop()
	gone := false
	for {
		select {
		case <-j.stopPos:
			return
		case <-t.C:
		}
		j.mu.Lock()
		seq := j.seq
		j.mu.Unlock()
		if seq == 0 {
			continue // in admission, or being published
		}
		ctx, cancel := context.WithTimeout(context.Background(), outcomePoll)
		_, err := j.g.stream.GetMsg(ctx, seq)
		cancel()
		switch {
		case err == nil:
			gone = false // waiting or running
		case !errors.Is(err, jetstream.ErrMsgNotFound):
			// NATS failing over, for example: look again next time.
		case !gone:
			// Acked or terminated just now: its outcome may still be on
			// the way. Give it one more poll.
			gone = true
		default:
			ctx, cancel := context.WithTimeout(context.Background(), outcomePoll)
			res, ok := storedResult(ctx, j.g.cfg.Store, j.ID)
			cancel()
			if ok {
				j.g.log.Warn("a job's result event was lost; answering from the store", "job", j.ID[:12])
				j.result(res)
			} else {
				j.g.log.Warn("a job left the stream without a result and its outcome event was lost", "job", j.ID[:12])
				j.finish(&protocol.Error{Code: protocol.CodeInternal,
					Message: "the job left the queue without a result (it failed or was cancelled or removed) and the reason was lost on the way: send it again with a new id"})
			}
			return
		}
	}
}

// deliver ends the job with a stored result.
func (j *Job) deliver(res *protocol.Result) {
	res.Cached = true
	j.result(res)
}

// result ends the job with res, unless it has ended already.
func (j *Job) result(res *protocol.Result) {
	j.finishWith(nil, func() {
		if j.ev.Result != nil {
			j.ev.Result(res)
		}
	})
}

// onEvent relays one message of the job's event subject.
func (j *Job) onEvent(m *nats.Msg) {
	<-j.ready
	if j.isEnded() {
		return
	}
	// Any event means a worker has the job (possibly one sent earlier
	// with the same id, which this job attached to).
	j.markTaken()
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
		j.eventOrder.Lock()
		j.mu.Lock()
		j.started = true
		j.mu.Unlock()
		if j.ev.Started != nil {
			j.ev.Started(*p)
		}
		j.eventOrder.Unlock()
	case *protocol.Progress:
		if j.ev.Progress != nil {
			j.ev.Progress(*p)
		}
	case *protocol.Result:
		j.result(p)
	case *protocol.Error:
		j.finish(p)
	}
}

// reportPositions follows the job's place in line until a worker starts
// it, sending Queued whenever the place changes: in admission, its place
// there plus the jobs of its model ahead of admission (being published,
// or waiting in the stream); in the stream, the jobs ahead of it there.
// It is also what notices that a worker took the job when no started
// event says so.
func (j *Job) reportPositions() {
	t := time.NewTicker(positionPoll)
	defer t.Stop()
	last := -1
	for {
		j.mu.Lock()
		started := j.started
		j.mu.Unlock()
		if started {
			return
		}
		if p, ok := j.g.position(j); ok && p != last {
			// A place is read from the admission queue and the stream
			// at slightly different moments; a job moving from one to
			// the other (a publish, a delivery, milliseconds) can be
			// counted twice or not at all. A changed place is read
			// again once such a step is over, and sent only if it holds.
			select {
			case <-j.stopPos:
				return
			case <-time.After(positionSettle):
			}
			if again, ok := j.g.position(j); !ok || again != p {
				continue
			}
			last = p
			j.eventOrder.Lock()
			j.mu.Lock()
			started = j.started
			j.mu.Unlock()
			if !started && j.ev.Queued != nil {
				j.ev.Queued(protocol.Queued{Position: p})
			}
			j.eventOrder.Unlock()
			if started {
				return
			}
		}
		select {
		case <-j.stopPos:
			return
		case <-j.posWake:
		case <-t.C:
		}
	}
}

// wakePositions makes the position poller look again now.
func (j *Job) wakePositions() {
	select {
	case j.posWake <- struct{}{}:
	default:
	}
}

// position is the number of jobs of the same model that will be handed to
// a worker before j. In the stream, it is the undelivered jobs with a
// lower stream sequence, from the workers' consumer: the last sequence it
// delivered and the count of undelivered jobs. With one model per stream
// sequence range it is exact; jobs of other models or cancelled jobs
// between the last delivered one and j can make it overcount until they
// are passed. In admission, it is the job's place in the admission queue
// plus every undelivered job of the model in the stream (from any
// gateway), all of which go first.
func (g *Gateway) position(j *Job) (int, bool) {
	j.mu.Lock()
	seq := j.seq
	j.mu.Unlock()
	inAdmission := j.admitPos.Load()
	if seq == 0 && inAdmission < 0 {
		return 0, false // being published: the next look finds it in the stream
	}
	st, ok := g.consumerState(j.model)
	if !ok {
		return 0, false
	}
	if seq == 0 {
		return int(inAdmission) + int(g.publishing(j.model)) + int(st.pending), true
	}
	if seq <= st.delivered {
		j.markTaken()
		return 0, true // delivered: a worker is starting it
	}
	ahead := int(seq - st.delivered - 1)
	ahead = min(ahead, int(st.pending)-1)
	return max(ahead, 0), true
}

// consumerState is what position needs from a model's consumer.
type consumerState struct {
	at        time.Time
	delivered uint64 // stream sequence of the last job delivered to a worker
	pending   uint64 // jobs not yet delivered
}

// stateTTL is how long one read of a consumer serves every waiting job's
// position, so that a long admission queue, woken at once by a change,
// costs one request per model rather than one per job. positionSettle,
// longer, is how long a changed position waits to be read again.
const (
	stateTTL       = 20 * time.Millisecond
	positionSettle = 2 * stateTTL
)

func (g *Gateway) consumerState(model string) (consumerState, bool) {
	g.mu.Lock()
	st, ok := g.states[model]
	g.mu.Unlock()
	if ok && time.Since(st.at) < stateTTL {
		return st, true
	}
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
	st = consumerState{at: time.Now(), delivered: info.Delivered.Stream, pending: info.NumPending}
	g.mu.Lock()
	g.states[model] = st
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

// onMaxDeliveries fails the job that JetStream gave up on.
func (g *Gateway) onMaxDeliveries(m *nats.Msg) {
	var adv struct {
		StreamSeq  uint64 `json:"stream_seq"`
		Deliveries int    `json:"deliveries"`
	}
	if json.Unmarshal(m.Data, &adv) != nil {
		return
	}
	g.mu.Lock()
	j := g.bySeq[adv.StreamSeq]
	g.mu.Unlock()
	if j == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	g.stream.DeleteMsg(ctx, adv.StreamSeq)
	j.finish(&protocol.Error{Code: protocol.CodeInternal, Message: fmt.Sprintf("the job did not finish on any of the %d workers it was given to", adv.Deliveries)})
}
