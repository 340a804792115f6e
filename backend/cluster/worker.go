package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"reword/backend/editjob"
	"reword/backend/model"
	"reword/backend/photo"
	"reword/backend/store"
	"reword/shared/edit"
	"reword/shared/protocol"
)

// WorkerConfig is what a worker needs.
type WorkerConfig struct {
	// Name identifies the worker in logs.
	Name string
	// Conn is the worker's NATS connection; the worker does not close it.
	Conn *nats.Conn
	// Engine runs the jobs; its model's id selects the jobs' subject.
	Engine Engine
	// Store is the blob store shared with the gateways.
	Store       *store.Store
	Settings    Settings
	PhotoLimits photo.Limits
	Logger      *slog.Logger
	// Sole says this worker is the only one its NATS will ever have (reword
	// serve's role all, on its own embedded NATS): at start it removes what
	// an earlier run left for other models (see forgetOtherModels).
	Sole bool
}

// Engine is what a worker runs jobs on: a *diffusion.Engine.
type Engine interface {
	editjob.Engine
	// Defaults are the model's spec defaults, which the worker registers
	// for the gateways and resolves every job's spec against.
	Defaults() edit.Defaults
	// Manifest describes the model (its name, for clients).
	Manifest() *model.Manifest
}

// WorkerStats count what a worker did with the jobs it received.
type WorkerStats struct {
	Completed   int64 // ran to a stored result
	FromStore   int64 // already had a result: answered from the store
	Cancelled   int64
	Failed      int64 // ended with an error, panicked, or were not job messages
	Redelivered int64 // received after another delivery of the same job
}

// Worker pulls jobs of its engine's model and runs them one at a time.
type Worker struct {
	cfg      WorkerConfig
	log      *slog.Logger
	js       jetstream.JetStream
	stream   jetstream.Stream
	consumer jetstream.Consumer
	models   jetstream.KeyValue
	entry    ModelEntry

	mu      sync.Mutex
	running map[string]context.CancelCauseFunc // job id → cancel
	cancels *nats.Subscription

	draining  chan struct{} // closed by Drain
	drainOnce sync.Once

	completed, fromStore, cancelled, failed, redelivered atomic.Int64
}

// errCancelled is the cause of a job stopped by a client's cancel.
var errCancelled = errors.New("the request was cancelled")

// NewWorker sets up the stream, the model's consumer and the registry
// entry, and subscribes to cancellations. Run then takes jobs.
func NewWorker(ctx context.Context, cfg WorkerConfig) (*Worker, error) {
	s, err := cfg.Settings.withDefaults()
	if err != nil {
		return nil, err
	}
	cfg.Settings = s
	if cfg.Conn == nil || cfg.Engine == nil || cfg.Store == nil {
		return nil, errors.New("cluster: a worker needs a NATS connection, an engine and a store")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	w := &Worker{cfg: cfg, log: cfg.Logger.With("worker", cfg.Name), running: map[string]context.CancelCauseFunc{}, draining: make(chan struct{})}
	if w.js, err = jetstream.New(cfg.Conn); err != nil {
		return nil, fmt.Errorf("cluster: JetStream: %w", err)
	}
	d := cfg.Engine.Defaults()
	if w.stream, err = ensureStream(ctx, w.js, s); err != nil {
		return nil, err
	}
	if w.consumer, err = ensureConsumer(ctx, w.js, s, d.Model); err != nil {
		return nil, err
	}
	if w.models, err = modelsBucket(ctx, w.js, s); err != nil {
		return nil, err
	}
	w.entry = ModelEntry{
		Info: protocol.ModelInfo{
			ID: d.Model, Name: cfg.Engine.Manifest().Name, Ready: true, Defaults: protocol.DefaultsOf(d),
		},
		Defaults: d,
	}
	if err := putModel(ctx, w.models, w.entry); err != nil {
		return nil, err
	}
	if cfg.Sole {
		if err := forgetOtherModels(ctx, w.models, w.stream, d.Model); err != nil {
			return nil, err
		}
	}
	// One subscription for every job's cancel: the handler looks up the
	// job among those running here.
	w.cancels, err = cfg.Conn.Subscribe(cancelSubjectPrefix+"*", func(m *nats.Msg) {
		w.mu.Lock()
		cancel := w.running[m.Subject[len(cancelSubjectPrefix):]]
		w.mu.Unlock()
		if cancel != nil {
			cancel(errCancelled)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: subscribing to cancellations: %w", err)
	}
	return w, nil
}

// Stats reports what the worker did so far.
func (w *Worker) Stats() WorkerStats {
	return WorkerStats{
		Completed: w.completed.Load(), FromStore: w.fromStore.Load(), Cancelled: w.cancelled.Load(),
		Failed: w.failed.Load(), Redelivered: w.redelivered.Load(),
	}
}

// Running lists the ids of the jobs this worker runs now.
func (w *Worker) Running() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	ids := make([]string, 0, len(w.running))
	for id := range w.running {
		ids = append(ids, id)
	}
	return ids
}

// Run takes and runs jobs until ctx ends or Drain is called. A job running
// when ctx ends is given back to the stream (Nak) for another worker,
// unless the connection is gone, in which case JetStream redelivers it
// after AckWait. After Drain, the running job goes on to its end (or
// until ctx ends) and no other is taken.
func (w *Worker) Run(ctx context.Context) error {
	defer w.cancels.Unsubscribe()
	stopRefresh := w.refreshRegistration(ctx)
	defer stopRefresh()
	for ctx.Err() == nil {
		select {
		case <-w.draining:
			return nil
		default:
		}
		msg, err := w.consumer.Next(jetstream.FetchMaxWait(time.Second))
		if err != nil {
			if !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoMessages) && ctx.Err() == nil {
				// NATS failing over between nodes, for example: wait
				// a little rather than spin.
				w.log.Warn("fetching a job", "err", err)
				select {
				case <-ctx.Done():
				case <-time.After(500 * time.Millisecond):
				}
			}
			continue
		}
		select {
		case <-w.draining:
			// Fetched as Drain was called: hand it back at once for
			// another worker (or this process's next start).
			msg.Nak()
			return nil
		default:
		}
		w.handle(ctx, msg)
	}
	return nil
}

// Drain makes Run return once the job it runs has ended, taking no other:
// the graceful stop of a process that shuts down. Safe to call more than
// once, and before or while Run runs.
func (w *Worker) Drain() {
	w.drainOnce.Do(func() { close(w.draining) })
}

// refreshRegistration keeps the model's registry entry alive every
// registryTTL/3 until the returned stop is called, also while a job runs
// (a job can take far longer than the entry lives).
func (w *Worker) refreshRegistration(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(registryTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := putModel(ctx, w.models, w.entry); err != nil && ctx.Err() == nil {
					w.log.Warn("refreshing the model registration", "err", err)
				}
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// delivery is one delivered job message, decoded.
type delivery struct {
	msg       jetstream.Msg
	meta      *jetstream.MsgMetadata
	jobID     string
	requestID string
	run       *protocol.Run
	log       *slog.Logger
	queued    time.Duration // from publication to the start of the run
}

// handle runs one delivered job to its end: answered from the store when
// an earlier delivery finished it, otherwise run on the engine, then
// acknowledged (result stored), terminated (failed or cancelled) or handed
// back (the worker is stopping).
//
// A panic anywhere in it ends the job, not the worker: the job fails with
// an internal error and its message is terminated, since it would panic
// on every worker it reached (in role all, a panic would take down the
// whole server, and a poison message every worker in turn).
func (w *Worker) handle(ctx context.Context, msg jetstream.Msg) {
	var d delivery // as far as it is known, for the recovery
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		w.failed.Add(1)
		log := w.log
		if d.log != nil {
			log = d.log
		}
		log.Error("the job panicked; terminating it", "panic", v, "stack", string(debug.Stack()))
		if d.jobID != "" {
			w.publishError(d.jobID, d.requestID, &protocol.Error{Code: protocol.CodeInternal, Message: fmt.Sprintf("%v: %v", errPanicked, v)})
		}
		msg.Term()
	}()
	var ok bool
	if d, ok = w.decode(msg); !ok {
		w.failed.Add(1)
		return
	}
	// Idempotence: a job that already has a result (an earlier delivery
	// finished but its ack was lost) is answered from the store.
	if res, err := storedResult(ctx, w.cfg.Store, d.jobID); err == nil {
		w.fromStore.Add(1)
		w.publish(d.jobID, protocol.TypeResult, d.requestID, res)
		msg.Ack()
		return
	}
	jobCtx, unregister := w.register(ctx, d.jobID)
	defer unregister()
	// A gateway cancels by deleting the job from the stream and then
	// publishing on its cancel subject. Registered above, the job either
	// receives that publish or finds its message deleted here.
	if _, err := w.stream.GetMsg(ctx, d.meta.Sequence.Stream); errors.Is(err, jetstream.ErrMsgNotFound) {
		w.cancelled.Add(1)
		d.log.Info("job cancelled before it started")
		msg.Term()
		return
	}
	stopBeat := w.heartbeat(msg)
	defer stopBeat()
	d.queued = time.Since(d.meta.Timestamp)
	res, err := w.run(jobCtx, d)
	stopBeat()
	if err != nil {
		w.fail(ctx, jobCtx, d, err)
		return
	}
	w.complete(ctx, d, res)
}

// decode reads a job message, terminating one that is not a job: it would
// fail the same way on every worker.
func (w *Worker) decode(msg jetstream.Msg) (delivery, bool) {
	jobID := msg.Headers().Get(headerJob)
	meta, err := msg.Metadata()
	switch {
	case err != nil:
		w.log.Error("a job message without metadata; terminating it", "err", err)
		msg.Term()
		return delivery{}, false
	case !store.ValidHash(jobID):
		// Job ids are what JobID makes: 64 lowercase hex digits, also
		// the key of the job's stored result.
		w.log.Error("a job message whose "+headerJob+" header is not a job id; terminating it", "header", fmt.Sprintf("%.80q", jobID))
		msg.Term()
		return delivery{}, false
	}
	d := delivery{msg: msg, meta: meta, jobID: jobID, log: w.log.With("job", jobID[:12], "delivery", meta.NumDelivered)}
	if meta.NumDelivered > 1 {
		w.redelivered.Add(1)
	}
	m, err := protocol.Decode(msg.Data())
	if err == nil {
		d.run, _ = m.Payload.(*protocol.Run)
	}
	if d.run == nil {
		d.log.Error("a job message that is not a run; terminating it", "err", err)
		w.publishError(jobID, "", &protocol.Error{Code: protocol.CodeInternal, Message: "the job message is not a run envelope"})
		msg.Term()
		return delivery{}, false
	}
	d.requestID = m.ID
	return d, true
}

// register makes the job cancellable by its cancel subject and bounds it
// by the job timeout, until unregister is called.
func (w *Worker) register(ctx context.Context, jobID string) (jobCtx context.Context, unregister func()) {
	jobCtx, cancel := context.WithCancelCause(ctx)
	stop := context.CancelFunc(func() {})
	if w.cfg.Settings.JobTimeout > 0 {
		jobCtx, stop = context.WithTimeoutCause(jobCtx, w.cfg.Settings.JobTimeout, context.DeadlineExceeded)
	}
	w.mu.Lock()
	w.running[jobID] = cancel
	w.mu.Unlock()
	return jobCtx, func() {
		w.mu.Lock()
		delete(w.running, jobID)
		w.mu.Unlock()
		stop()
		cancel(nil)
	}
}

// errPanicked wraps the value of a job that panicked.
var errPanicked = errors.New("the edit panicked")

// run resolves the job's spec against the worker's model, announces the
// start and runs the edit, streaming its previews and progress. A panic
// in the edit ends the job with an error instead of the process: one bad
// job must not take down the worker (in role all, the whole server).
func (w *Worker) run(ctx context.Context, d delivery) (res *protocol.Result, err error) {
	r, err := d.run.Spec.Resolve(w.entry.Defaults)
	if err != nil {
		return nil, err
	}
	w.publish(d.jobID, protocol.TypeStarted, d.requestID, protocol.Started{Rows: editjob.Rows(r), Steps: r.Steps, Spec: r.Spec()})
	events := eventSubject(d.jobID)
	defer func() {
		if v := recover(); v != nil {
			d.log.Error("the edit panicked", "panic", v, "stack", string(debug.Stack()))
			res, err = nil, fmt.Errorf("%w: %v", errPanicked, v)
		}
	}()
	return editjob.Run(ctx, w.cfg.Engine, w.cfg.Store, editjob.Request{
		ID: d.requestID, Spec: r.Spec(), HeatMaps: d.run.HeatMaps, PhotoLimits: w.cfg.PhotoLimits,
	}, editjob.Events{
		Preview: func(frame []byte, row int) {
			w.cfg.Conn.PublishMsg(&nats.Msg{Subject: events, Header: nats.Header{headerKind: []string{kindFrame}}, Data: frame})
		},
		Progress: func(p protocol.Progress) { w.publish(d.jobID, protocol.TypeProgress, d.requestID, p) },
	})
}

// fail ends a job that produced no result. A worker that is stopping hands
// it back to the stream for another worker now rather than after AckWait;
// otherwise the job is terminated (it would fail the same way elsewhere)
// and its client told why.
func (w *Worker) fail(ctx, jobCtx context.Context, d delivery, err error) {
	var e *protocol.Error
	switch {
	case ctx.Err() != nil:
		d.log.Info("worker stopping; job handed back")
		d.msg.Nak()
		return
	case errors.Is(context.Cause(jobCtx), errCancelled):
		w.cancelled.Add(1)
		d.log.Info("job cancelled")
		e = &protocol.Error{Code: protocol.CodeCancelled, Message: "the request was cancelled"}
	case errors.Is(err, context.DeadlineExceeded):
		w.failed.Add(1)
		e = &protocol.Error{Code: protocol.CodeTimeout, Message: fmt.Sprintf("the job ran longer than %v and was stopped", w.cfg.Settings.JobTimeout)}
	default:
		w.failed.Add(1)
		if e = editjob.ErrorOf(err); e.Code == protocol.CodeInternal {
			d.log.Error("job failed", "err", err)
		}
	}
	w.publishError(d.jobID, d.requestID, e)
	d.msg.Term()
}

// complete stores the job's result, publishes it and acknowledges the job.
func (w *Worker) complete(ctx context.Context, d delivery, res *protocol.Result) {
	res.Timings.QueuedMS = protocol.Milliseconds(d.queued)
	// Store the job's result before publishing and acking it: whatever
	// happens after this point, the job is never computed again.
	if err := w.storeResult(ctx, d.jobID, res); err != nil {
		d.log.Error("storing the job result; handing the job back", "err", err)
		d.msg.Nak()
		return
	}
	w.completed.Add(1)
	w.publish(d.jobID, protocol.TypeResult, d.requestID, res)
	if err := d.msg.DoubleAck(ctx); err != nil {
		d.log.Warn("acknowledging the job (its result is stored; a redelivery answers from the store)", "err", err)
	}
	d.log.Info("job done", "run_ms", res.Timings.RunMS, "queued_ms", res.Timings.QueuedMS)
}

// heartbeat tells JetStream the job is alive every AckWait/3 until the
// returned stop is called (safe to call more than once).
func (w *Worker) heartbeat(msg jetstream.Msg) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(w.cfg.Settings.AckWait / 3)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				msg.InProgress()
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() { close(done); wg.Wait() })
	}
}

// jobRecord is the key of a job's stored result. Job ids are already
// SHA-256 hashes (of a domain-separated input), so they are store keys.
func jobRecord(jobID string) string { return jobID }

// storedResult is a job's stored result, when its record and every image
// it names are still stored (as editjob.Cached checks a spec's): a result
// whose images were evicted is run again rather than answered with
// links that no longer work. The error wraps store.ErrNotFound when there
// is no such result (none stored, a record that does not decode, or an
// image gone); any other error is the store failing, which says nothing
// about whether the job finished.
func storedResult(ctx context.Context, st *store.Store, jobID string) (*protocol.Result, error) {
	data, err := st.Record(ctx, jobRecord(jobID))
	if err != nil {
		return nil, err
	}
	var res protocol.Result
	if json.Unmarshal(data, &res) != nil || len(res.Images) == 0 {
		return nil, fmt.Errorf("the stored result does not decode: %w", store.ErrNotFound)
	}
	for _, im := range res.Images {
		if !st.ImageExists(ctx, im.Hash) {
			return nil, fmt.Errorf("image %s of the stored result is gone: %w", im.Hash, store.ErrNotFound)
		}
	}
	return &res, nil
}

func (w *Worker) storeResult(ctx context.Context, jobID string, res *protocol.Result) error {
	b, err := json.Marshal(res)
	if err != nil {
		return fmt.Errorf("encoding the result: %w", err)
	}
	return w.cfg.Store.PutRecord(ctx, jobRecord(jobID), b)
}

func (w *Worker) publish(jobID string, t protocol.Type, requestID string, payload any) {
	b, err := protocol.Encode(t, requestID, payload)
	if err != nil {
		w.log.Error("encoding an event", "type", t, "err", err)
		return
	}
	if err := w.cfg.Conn.Publish(eventSubject(jobID), b); err != nil {
		w.log.Warn("publishing an event", "type", t, "err", err)
	}
}

func (w *Worker) publishError(jobID, requestID string, e *protocol.Error) {
	w.publish(jobID, protocol.TypeError, requestID, e)
}
