package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

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

// Gateway submits jobs to the stream and relays each job's events to
// whoever submitted it.
type Gateway struct {
	cfg    GatewayConfig
	log    *slog.Logger
	js     jetstream.JetStream
	stream jetstream.Stream
	models jetstream.KeyValue

	mu        sync.Mutex
	consumers map[string]jetstream.Consumer // model → workers' consumer
	bySeq     map[uint64]*Job               // waiting or running, by stream sequence
	advisory  *nats.Subscription
}

// positionPoll is how often a waiting job's queue position is refreshed.
const positionPoll = 500 * time.Millisecond

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
	g := &Gateway{cfg: cfg, log: cfg.Logger, consumers: map[string]jetstream.Consumer{}, bySeq: map[uint64]*Job{}}
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

// Close stops the gateway's subscriptions. Jobs still waiting keep running
// on the workers; their results stay fetchable from the store.
func (g *Gateway) Close() {
	g.advisory.Unsubscribe()
	g.mu.Lock()
	jobs := make([]*Job, 0, len(g.bySeq))
	for _, j := range g.bySeq {
		jobs = append(jobs, j)
	}
	g.mu.Unlock()
	for _, j := range jobs {
		j.finish(&protocol.Error{Code: protocol.CodeShutdown, Message: "the gateway is shutting down; reconnect and send the same request again to get its result"})
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

// Events receive one job's messages. Each may be nil; they are called from
// NATS's delivery goroutine in order and must not block for long.
type Events struct {
	Queued   func(protocol.Queued)
	Started  func(protocol.Started)
	Progress func(protocol.Progress)
	// Preview receives binary preview frames (protocol.EncodePreview).
	Preview func(frame []byte, row int)
	// Result receives the result; the job then ends with Err() == nil.
	Result func(*protocol.Result)
}

// Job follows one submitted job on the gateway side.
type Job struct {
	ID      string
	g       *Gateway
	model   string
	seq     uint64
	ev      Events
	sub     *nats.Subscription
	started bool
	// eventOrder orders Queued (from the position poller) against Started
	// (from NATS), so that no queued position follows "started".
	eventOrder sync.Mutex

	mu      sync.Mutex
	ended   bool
	err     error
	done    chan struct{}
	stopPos chan struct{}
	// ready is closed when Submit has set the job up (sub, seq, its
	// place in bySeq); events wait for it, since they can arrive as soon
	// as the job subscribes.
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

// Cancel stops the job wherever it is: a waiting job is deleted from the
// stream, and a running one is stopped on its worker. The job ends at once
// with a cancelled error.
func (j *Job) Cancel() {
	if j.isEnded() {
		return
	}
	g := j.g
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Delete first, then publish: a worker that registered the job before
	// the publish receives it, one that registers later finds the message
	// gone (see Worker.handle).
	if j.seq != 0 {
		if err := g.stream.DeleteMsg(ctx, j.seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			g.log.Warn("deleting a cancelled job from the stream", "job", j.ID[:12], "err", err)
		}
	}
	if err := g.cfg.Conn.Publish(cancelSubject(j.ID), nil); err != nil {
		g.log.Warn("publishing a cancel", "job", j.ID[:12], "err", err)
	}
	j.finish(&protocol.Error{Code: protocol.CodeCancelled, Message: "the request was cancelled"})
}

func (j *Job) isEnded() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.ended
}

// finish ends the job once with err (nil: a result was delivered).
func (j *Job) finish(err error) {
	j.mu.Lock()
	if j.ended {
		j.mu.Unlock()
		return
	}
	j.ended = true
	j.err = err
	j.mu.Unlock()
	if j.sub != nil {
		j.sub.Unsubscribe()
	}
	close(j.stopPos)
	j.g.mu.Lock()
	if j.g.bySeq[j.seq] == j {
		delete(j.g.bySeq, j.seq)
	}
	j.g.mu.Unlock()
	close(j.done)
}

// Submit queues a run of model for the client's request requestID, or
// attaches to the same job when it is already queued or running (sent
// before through this or another gateway), or answers from the store when
// it already has a result. run.Spec should be resolved, so that the job id
// does not depend on which defaults a client left out.
func (g *Gateway) Submit(ctx context.Context, model, requestID string, run protocol.Run, ev Events) (*Job, error) {
	jobID, err := JobID(requestID, run)
	if err != nil {
		return nil, err
	}
	body, err := protocol.Encode(protocol.TypeRun, requestID, run)
	if err != nil {
		return nil, err
	}
	j := &Job{ID: jobID, g: g, model: model, ev: ev, done: make(chan struct{}), stopPos: make(chan struct{}), ready: make(chan struct{})}
	defer close(j.ready)
	// abandon drops a job Submit fails: its events are ignored.
	abandon := func() {
		j.mu.Lock()
		j.ended = true
		j.mu.Unlock()
		j.sub.Unsubscribe()
	}
	// Subscribe before anything else, so that no event of an in-flight
	// job is missed between the checks below and the first message.
	j.sub, err = g.cfg.Conn.Subscribe(eventSubject(jobID), j.onEvent)
	if err != nil {
		return nil, fmt.Errorf("cluster: subscribing to the job's events: %w", err)
	}
	if res, ok := storedResult(ctx, g.cfg.Store, jobID); ok {
		j.deliver(res)
		return j, nil
	}
	msg := &nats.Msg{Subject: jobSubject(model), Header: nats.Header{headerJob: []string{jobID}}, Data: body}
	ack, err := g.js.PublishMsg(ctx, msg, jetstream.WithMsgID(jobID))
	if err != nil {
		abandon()
		if strings.Contains(err.Error(), "maximum messages exceeded") {
			return nil, &protocol.Error{Code: protocol.CodeBusy, Message: fmt.Sprintf("the job queue is full (%d jobs): try again shortly", g.cfg.Settings.MaxQueued)}
		}
		return nil, fmt.Errorf("cluster: queueing the job: %w", err)
	}
	j.seq = ack.Sequence
	if ack.Duplicate {
		// The same job was submitted before. It is still in the stream
		// (waiting, or running with this gateway now listening), or it
		// has ended: with a stored result, or without one (cancelled or
		// failed), in which case this request id cannot be reused.
		if _, err := g.stream.GetMsg(ctx, ack.Sequence); errors.Is(err, jetstream.ErrMsgNotFound) {
			if res, ok := storedResult(ctx, g.cfg.Store, jobID); ok {
				j.deliver(res)
				return j, nil
			}
			abandon()
			return nil, &protocol.Error{Code: protocol.CodeDuplicateID, Field: "id",
				Message: "this request id was used for the same run, which was cancelled or failed: send it with a new id"}
		}
	}
	g.mu.Lock()
	g.bySeq[j.seq] = j
	g.mu.Unlock()
	go j.reportPositions()
	return j, nil
}

// deliver ends the job with a stored result.
func (j *Job) deliver(res *protocol.Result) {
	res.Cached = true
	if j.ev.Result != nil {
		j.ev.Result(res)
	}
	j.finish(nil)
}

// onEvent relays one message of the job's event subject.
func (j *Job) onEvent(m *nats.Msg) {
	<-j.ready
	if j.isEnded() {
		return
	}
	if m.Header.Get(headerKind) == kindFrame {
		if p, err := protocol.DecodePreview(m.Data); err == nil && j.ev.Preview != nil {
			j.ev.Preview(m.Data, p.Row)
		}
		return
	}
	msg, err := protocol.Decode(m.Data)
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
		if j.ev.Result != nil {
			j.ev.Result(p)
		}
		j.finish(nil)
	case *protocol.Error:
		j.finish(p)
	}
}

// reportPositions polls the stream for the job's place in line until a
// worker starts it, sending Queued whenever the place changes.
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
		case <-t.C:
		}
	}
}

// position is the number of jobs of the same model that will be handed to
// a worker before j: the undelivered jobs with a lower stream sequence.
// It comes from the workers' consumer: the last sequence it delivered and
// the count of undelivered jobs. With one model per stream sequence range
// it is exact; jobs of other models or cancelled jobs between the last
// delivered one and j can make it overcount until they are passed.
func (g *Gateway) position(j *Job) (int, bool) {
	c, err := g.consumer(j.model)
	if err != nil {
		return 0, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, err := c.Info(ctx)
	if err != nil {
		return 0, false
	}
	if j.seq <= info.Delivered.Stream {
		return 0, true // delivered: a worker is starting it
	}
	ahead := int(j.seq - info.Delivered.Stream - 1)
	ahead = min(ahead, int(info.NumPending)-1)
	return max(ahead, 0), true
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
