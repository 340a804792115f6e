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
	jobs       map[*Job]struct{}             // every admitted job not ended, in admission or the stream
	bySeq      map[uint64]*Job               // published jobs not ended, by stream sequence
	draining   bool                          // Drain was called: nothing more is admitted
	closed     bool
	advisory   *nats.Subscription

	// loops counts the jobs' goroutines and their helpers, which Close
	// waits for.
	loops sync.WaitGroup
}

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
		j.inbox.post(ending{err: errShutdown()})
	}
	for _, j := range jobs {
		<-j.done
	}
	// Every admitted job has ended, so the queues' workers return at
	// once; the timeout only bounds a publish stuck on a lost NATS.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, q := range queues {
		q.Close(ctx)
	}
	stopped := make(chan struct{})
	go func() {
		g.loops.Wait()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-ctx.Done():
		g.log.Warn("closing the gateway: a job's NATS reads are still running")
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
		return ModelEntry{}, SeveralModelsError(ids)
	}
	return ModelEntry{}, fmt.Errorf("%w: %q (served: %s)", ErrUnknownModel, model, strings.Join(ids, ", "))
}

// SeveralModelsError is the error of a spec that names no model while the
// models ids are served.
func SeveralModelsError(ids []string) error {
	return fmt.Errorf("%w (%s): name one in spec.model", ErrSeveralModels, strings.Join(ids, ", "))
}

// Events receive one job's messages. Each may be nil. They are called in
// order, from the job's own goroutine, and must not block for long.
type Events struct {
	Queued   func(protocol.Queued)
	Started  func(protocol.Started)
	Progress func(protocol.Progress)
	// Preview receives binary preview frames (protocol.EncodePreview).
	Preview func(frame []byte, row int)
	// Result receives the result; the job then ends with Err() == nil.
	Result func(*protocol.Result)
}

// Ticket follows a submitted job: Cancel stops it wherever it is, Err
// waits for its end (nil: the result was delivered to Events.Result).
type Ticket interface {
	Cancel()
	Err() error
}

// Submit admits a run of model for the request requestID of client, or
// attaches to the same job when it is already queued or running (sent
// before by the same client, through this or another gateway), or answers
// from the store when it already has a result. client identifies who sent
// it (the server's client address): it owns the job (see JobID), takes
// turns with other clients and is limited in admission. run.Spec
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
	jobID, err := JobID(client, requestID, run)
	if err != nil {
		return nil, err
	}
	body, err := protocol.Encode(protocol.TypeRun, requestID, run)
	if err != nil {
		return nil, err
	}
	j := &Job{
		ID: jobID, g: g, model: model, client: client, body: body, ev: ev,
		inbox: inbox{signal: make(chan struct{}, 1)},
		done:  make(chan struct{}), slotFree: make(chan struct{}),
	}
	// Subscribe before anything else, so that no event of an in-flight
	// job is missed between the checks below and the first message; the
	// inbox keeps them until the loop starts.
	j.sub, err = g.cfg.Conn.Subscribe(eventSubject(jobID), func(m *nats.Msg) { j.inbox.post(message{m}) })
	if err != nil {
		return nil, fmt.Errorf("cluster: subscribing to the job's events: %w", err)
	}
	// A finished job is answered at once, without taking a turn.
	if res, err := storedResult(ctx, g.cfg.Store, jobID); err == nil {
		res.Cached = true
		j.inbox.post(answered{res})
		if !g.enlist() {
			j.sub.Unsubscribe()
			return nil, errShutdown()
		}
	} else if err := g.admit(j); err != nil {
		j.sub.Unsubscribe() // the caller never sees j
		return nil, err
	}
	go j.loop()
	return j, nil
}

// enlist counts a job's loop for Close, unless the gateway is closed.
func (g *Gateway) enlist() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.loops.Add(1)
	return true
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
	j.inbox.post(ending{err: &protocol.Error{Code: protocol.CodeInternal, Message: fmt.Sprintf("the job did not finish on any of the %d workers it was given to", adv.Deliveries)}})
}
