// Package cluster runs Reword's edits on NATS JetStream: gateways (the
// WebSocket front end, no model) admit edit jobs fairly — clients take
// turns in a per-model admission queue (admission.go) — and submit them to
// a JetStream work-queue stream with one subject per model; workers pull
// them, run them on a diffusion engine, publish progress and previews on a
// per-job subject, and store results in the shared blob store, where any
// gateway finds them. At a gateway, each job is one goroutine that owns
// its state, events in and updates out (job.go); its queue positions and
// the watch for a lost outcome are positions.go. The same pieces run a
// cluster of machines or, with an embedded NATS server (StartNode), one
// process (Local: reword serve's role all).
//
// Subjects and JetStream objects:
//
//	reword.jobs.<model>       the work queue (stream REWORD_JOBS); body: a protocol "run"
//	                          envelope whose id is the client's request id; header
//	                          Reword-Job (and Nats-Msg-Id) carries the job id
//	reword.events.<job>       core NATS: protocol envelopes (started, progress, result,
//	                          error) and binary preview frames (header Reword-Kind: preview)
//	reword.cancel.<job>       core NATS: stop the job wherever it runs
//	KV reword_models          one entry per model with a live worker: its ModelInfo and
//	                          spec defaults, expiring when no worker refreshes it
//
// Guarantees: at-least-once delivery with idempotent results (a job whose
// result record exists is answered from the store, never recomputed); a
// worker that dies mid-job stops sending heartbeats and its job is
// redelivered after AckWait; a job id is derived from the client (its
// address), its request id and the resolved spec, so a client that
// reconnects to another gateway and sends the same run again gets the
// stored or in-flight job, not a new one, and no other client can reach
// that job.
package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"reword/shared/limits"
	"reword/shared/protocol"
)

// Names of the JetStream objects and subject prefixes.
const (
	StreamName          = "REWORD_JOBS"
	ModelsBucket        = "reword_models"
	jobSubjectPrefix    = "reword.jobs."
	eventSubjectPrefix  = "reword.events."
	cancelSubjectPrefix = "reword.cancel."

	headerJob  = "Reword-Job"
	headerKind = "Reword-Kind"
	kindFrame  = "preview"
)

// Settings are the cluster-wide knobs. Gateways and workers of one
// deployment must agree on them (the stream and consumers are created with
// them; a disagreement updates the consumer to the last writer's values).
type Settings struct {
	// Replicas of the job stream and the models bucket: 1 on a single
	// NATS server, 3 on a 3-node cluster (survives the loss of one node).
	Replicas int
	// AckWait is how long a job may go without a worker heartbeat before
	// it is redelivered to another worker (default 30 s). Workers send a
	// heartbeat every AckWait/3 while a job runs, so a long job is never
	// redelivered while its worker lives; a dead worker's job is
	// redelivered within AckWait.
	AckWait time.Duration
	// MaxDeliver bounds the deliveries of one job (default 5): a job that
	// kills every worker it reaches fails instead of circling forever.
	MaxDeliver int
	// JobTimeout stops a job that runs longer (default limits.JobTimeout).
	JobTimeout time.Duration
	// MaxQueued bounds the jobs in the stream, waiting or running, and the
	// jobs of one model waiting in one gateway's admission queue; more are
	// refused with a busy error (default limits.QueuedJobs).
	MaxQueued int
	// AdmitWindow is how many of one gateway's jobs of one model may wait
	// in the stream for a worker (default 1). The gateway holds the rest
	// in its admission queue, where clients take turns (see admission.go):
	// a job in the stream can no longer be reordered, so a larger window
	// makes a newly arriving client wait behind more of another client's
	// jobs, and 1 already keeps a worker that finishes a job from waiting
	// for the next.
	AdmitWindow int
	// MaxPerClient bounds one client's jobs in a gateway's admission
	// queue: waiting there, or published and not yet taken by a worker
	// (default limits.JobsPerClient). The server also caps a client
	// address's jobs in flight.
	MaxPerClient int
}

func (s Settings) withDefaults() (Settings, error) {
	if s.Replicas == 0 {
		s.Replicas = 1
	}
	if s.AckWait == 0 {
		s.AckWait = 30 * time.Second
	}
	if s.MaxDeliver == 0 {
		s.MaxDeliver = 5
	}
	if s.JobTimeout == 0 {
		s.JobTimeout = limits.JobTimeout
	}
	if s.MaxQueued == 0 {
		s.MaxQueued = limits.QueuedJobs
	}
	if s.AdmitWindow == 0 {
		s.AdmitWindow = 1
	}
	if s.MaxPerClient == 0 {
		s.MaxPerClient = limits.JobsPerClient
	}
	switch {
	case s.Replicas < 1 || s.Replicas > 5:
		return s, fmt.Errorf("cluster: replicas must be 1 to 5, got %d", s.Replicas)
	case s.AckWait < 300*time.Millisecond:
		return s, fmt.Errorf("cluster: ack wait %v is too short for heartbeats every third of it; use at least 300ms", s.AckWait)
	case s.MaxDeliver < 1:
		return s, fmt.Errorf("cluster: max deliver must be ≥ 1, got %d", s.MaxDeliver)
	case s.JobTimeout < 0:
		return s, fmt.Errorf("cluster: job timeout must be ≥ 0, got %v", s.JobTimeout)
	case s.MaxQueued < 1:
		return s, fmt.Errorf("cluster: max queued must be ≥ 1, got %d", s.MaxQueued)
	case s.AdmitWindow < 1:
		return s, fmt.Errorf("cluster: admit window must be ≥ 1 (jobs of one gateway waiting in the stream for a worker), got %d", s.AdmitWindow)
	case s.AdmitWindow > s.MaxQueued:
		return s, fmt.Errorf("cluster: admit window %d is larger than max queued %d, which bounds the stream", s.AdmitWindow, s.MaxQueued)
	case s.MaxPerClient < 1:
		return s, fmt.Errorf("cluster: max per client must be ≥ 1, got %d", s.MaxPerClient)
	}
	return s, nil
}

// SubjectToken turns a model id into one NATS subject token: ids made of
// letters, digits, '-' and '_' stay as they are; others are replaced by a
// readable prefix and a hash, so two ids never share a subject.
func SubjectToken(model string) string {
	ok := model != ""
	for _, r := range model {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			ok = false
			break
		}
	}
	if ok {
		return model
	}
	var b strings.Builder
	for _, r := range model {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	sum := sha256.Sum256([]byte(model))
	return b.String() + "-" + hex.EncodeToString(sum[:6])
}

// JobID identifies a job by its owner (the client that sent it: its
// address), the client's request id, the resolved spec and whether heat
// maps were asked for: the same run sent again by the same client (after
// a reconnect, to any gateway) is the same job, and another client's
// never is — it can neither attach to the job nor, through it, cancel it.
func JobID(owner, requestID string, run protocol.Run) (string, error) {
	b, err := protocol.Encode(protocol.TypeRun, requestID, run)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write([]byte("reword-job\x00"))
	h.Write([]byte(owner))
	h.Write([]byte{0})
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil)), nil
}

func jobSubject(model string) string  { return jobSubjectPrefix + SubjectToken(model) }
func eventSubject(job string) string  { return eventSubjectPrefix + job }
func cancelSubject(job string) string { return cancelSubjectPrefix + job }
func consumerName(model string) string {
	return "workers-" + SubjectToken(model)
}

// setupRetry is how long setup keeps retrying while a fresh cluster
// elects its JetStream leaders.
const setupRetry = 30 * time.Second

// ensureStream creates or updates the job stream.
func ensureStream(ctx context.Context, js jetstream.JetStream, s Settings) (jetstream.Stream, error) {
	cfg := jetstream.StreamConfig{
		Name:        StreamName,
		Description: "Reword edit jobs, one subject per model",
		Subjects:    []string{jobSubjectPrefix + "*"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    s.Replicas,
		MaxMsgs:     int64(s.MaxQueued),
		Discard:     jetstream.DiscardNew,
		// Duplicate detection by job id: a gateway that submits a job
		// already in the stream gets the first copy's sequence back.
		Duplicates: 10 * time.Minute,
	}
	return retry(ctx, "creating the job stream", func(ctx context.Context) (jetstream.Stream, error) {
		return js.CreateOrUpdateStream(ctx, cfg)
	})
}

// ensureConsumer creates or updates the workers' pull consumer of model.
func ensureConsumer(ctx context.Context, js jetstream.JetStream, s Settings, model string) (jetstream.Consumer, error) {
	cfg := jetstream.ConsumerConfig{
		Durable:       consumerName(model),
		Description:   "Reword workers of model " + model,
		FilterSubject: jobSubject(model),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.AckWait,
		MaxDeliver:    s.MaxDeliver,
		Replicas:      s.Replicas,
	}
	return retry(ctx, "creating the workers' consumer", func(ctx context.Context) (jetstream.Consumer, error) {
		return js.CreateOrUpdateConsumer(ctx, StreamName, cfg)
	})
}

// retry repeats f until it succeeds, ctx ends or setupRetry passes: a
// cluster that just started answers "no leader" for a few seconds.
func retry[T any](ctx context.Context, what string, f func(context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, setupRetry)
	defer cancel()
	for {
		attempt, done := context.WithTimeout(ctx, 5*time.Second)
		v, err := f(attempt)
		done()
		if err == nil {
			return v, nil
		}
		select {
		case <-ctx.Done():
			var zero T
			return zero, fmt.Errorf("cluster: %s: %w", what, errors.Join(err, ctx.Err()))
		case <-time.After(250 * time.Millisecond):
		}
	}
}
