package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"reword/backend/cluster"
	"reword/backend/editjob"
	"reword/backend/queue"
	"reword/shared/edit"
	"reword/shared/protocol"
)

// maxRequestID bounds client-chosen request ids (they appear in preview
// frame headers, which give them one length byte).
const maxRequestID = 128

// ticket follows one submitted edit: a queue.Ticket in process, a
// cluster.Job on a gateway.
type ticket interface {
	Cancel()
	Err() error
}

// specDefaults are the defaults specs resolve against: the loaded engine's,
// or those a cluster worker registered for its model.
func (s *Server) specDefaults() (edit.Defaults, error) {
	if s.cluster != nil {
		e, err := s.cluster.Model(context.Background(), "")
		if err != nil {
			return edit.Defaults{}, err
		}
		return e.Defaults, nil
	}
	if s.engine == nil {
		return edit.Defaults{}, errors.New(s.problem)
	}
	return s.engine.Defaults(), nil
}

// handleRun validates a run request and queues it. Everything the client
// sent is checked here again, whatever the browser already checked.
func (c *conn) handleRun(id string, run *protocol.Run) {
	s := c.s
	switch {
	case id == "":
		c.sendError("", &protocol.Error{Code: protocol.CodeBadMessage, Message: "a run needs a request id in the envelope's id", Field: "id"})
		return
	case len(id) > maxRequestID:
		c.sendError("", &protocol.Error{Code: protocol.CodeBadMessage, Message: fmt.Sprintf("request id is longer than %d bytes", maxRequestID), Field: "id"})
		return
	}
	defaults, err := s.specDefaults()
	if err != nil {
		c.sendError(id, &protocol.Error{Code: protocol.CodeNotReady, Message: "the model is not ready: " + err.Error()})
		return
	}
	r, err := run.Spec.Resolve(defaults)
	if err != nil {
		c.sendError(id, editjob.SpecError(err))
		return
	}
	if r.Image != "" && !s.store.HasImage(r.Image) {
		c.sendError(id, &protocol.Error{Code: protocol.CodeNotFound, Field: "spec.image", Message: editjob.ErrPhotoExpired.Error()})
		return
	}
	spec := r.Spec()
	if !run.HeatMaps {
		if res, ok := editjob.Cached(context.Background(), s.store, spec); ok {
			s.metrics.jobs.WithLabelValues("cached").Inc()
			c.sendMessage(protocol.TypeResult, id, res)
			return
		}
	}

	// The id is reserved under c.mu, but c.mu is not held while the
	// queue or the cluster is called: both may call back at once (a
	// cluster job with a stored result delivers it inside Submit), and
	// those callbacks take c.mu.
	c.mu.Lock()
	if _, dup := c.jobs[id]; dup {
		c.mu.Unlock()
		c.sendError(id, &protocol.Error{Code: protocol.CodeDuplicateID, Message: "a request with this id is already queued or running", Field: "id"})
		return
	}
	if max := s.cfg.Queue.MaxPerClient; s.cluster != nil && max > 0 && len(c.jobs) >= max {
		c.mu.Unlock()
		c.sendError(id, &protocol.Error{Code: protocol.CodeTooMany, Message: queue.ErrClientLimit.Error()})
		return
	}
	pending := &pendingTicket{}
	c.jobs[id] = pending
	c.mu.Unlock()
	log := s.log.With("conn", c.id, "request", id)
	var t ticket
	if s.cluster != nil {
		t, err = c.submitToCluster(id, r, run.HeatMaps)
	} else {
		t, err = c.submitToQueue(id, r, run.HeatMaps, log)
	}
	c.mu.Lock()
	if err == nil {
		c.jobs[id] = t
	} else {
		delete(c.jobs, id)
	}
	c.mu.Unlock()
	if err == nil && pending.cancelled.Load() {
		t.Cancel() // cancelled (or its socket closed) while it was submitted
	}
	if err != nil {
		var pe *protocol.Error
		switch {
		case errors.As(err, &pe):
		case errors.Is(err, queue.ErrClientLimit):
			pe = &protocol.Error{Code: protocol.CodeTooMany, Message: err.Error()}
		case errors.Is(err, queue.ErrClosed):
			pe = &protocol.Error{Code: protocol.CodeShutdown, Message: err.Error()}
		case errors.Is(err, queue.ErrBusy):
			pe = &protocol.Error{Code: protocol.CodeBusy, Message: err.Error()}
		default:
			pe = &protocol.Error{Code: protocol.CodeInternal, Message: "queueing the edit failed: " + err.Error()}
		}
		c.sendError(id, pe)
		return
	}
	log.Info("edit queued", "targets", len(r.Targets), "steps", r.Steps)
	c.s.awaits.Add(1)
	go c.await(id, t, log)
}

// pendingTicket holds a request id in c.jobs while the request is being
// submitted; a cancel meanwhile is applied to the real ticket afterwards.
type pendingTicket struct{ cancelled atomic.Bool }

func (p *pendingTicket) Cancel()    { p.cancelled.Store(true) }
func (p *pendingTicket) Err() error { return nil }

// submitToQueue runs the edit in this process, on the fair queue in front
// of the engine.
func (c *conn) submitToQueue(id string, r edit.Resolved, heatMaps bool, log *slog.Logger) (ticket, error) {
	spec := r.Spec()
	submitted := time.Now()
	var started time.Time
	return c.s.queue.Submit(queue.Job{
		Client:     c.id,
		OnPosition: func(p int) { c.sendMessage(protocol.TypeQueued, id, protocol.Queued{Position: p}) },
		OnStart: func() {
			started = time.Now()
			c.sendMessage(protocol.TypeStarted, id, protocol.Started{Rows: editjob.Rows(r), Steps: r.Steps, Spec: spec})
		},
		Run: func(ctx context.Context) error {
			res, err := c.runEdit(ctx, id, spec, heatMaps, log)
			if err != nil {
				return err
			}
			res.Timings.QueuedMS = ms(started.Sub(submitted))
			c.sendResult(id, res)
			return nil
		},
	})
}

// submitToCluster sends the edit to the cluster's workers through the
// gateway, relaying their events to this socket.
func (c *conn) submitToCluster(id string, r edit.Resolved, heatMaps bool) (ticket, error) {
	model := r.Spec().Model
	if model == "" {
		if d, err := c.s.specDefaults(); err == nil {
			model = d.Model
		}
	}
	run := protocol.Run{Spec: r.Spec(), HeatMaps: heatMaps}
	j, err := c.s.cluster.Submit(context.Background(), model, c.id, id, run, cluster.Events{
		Queued:   func(q protocol.Queued) { c.sendMessage(protocol.TypeQueued, id, q) },
		Started:  func(st protocol.Started) { c.sendMessage(protocol.TypeStarted, id, st) },
		Progress: func(p protocol.Progress) { c.sendMessage(protocol.TypeProgress, id, p) },
		Preview:  func(frame []byte, row int) { c.pushPreview(previewKey{id, row}, frame) },
		Result: func(res *protocol.Result) {
			if !res.Cached {
				c.s.metrics.jobSeconds.Observe(res.Timings.RunMS / 1000)
				c.s.metrics.stepSeconds.Observe(res.Timings.StepMS / 1000)
			}
			c.sendResult(id, res)
		},
	})
	if err != nil {
		return nil, err
	}
	return j, nil
}

// sendResult sends a result after dropping the request's pending previews,
// so that none is written after it.
func (c *conn) sendResult(id string, res *protocol.Result) {
	c.dropPreviews(id)
	c.sendMessage(protocol.TypeResult, id, res)
}

// await reports how a queued request ended, unless it produced a result.
func (c *conn) await(id string, t ticket, log *slog.Logger) {
	defer c.s.awaits.Done()
	err := t.Err()
	c.mu.Lock()
	delete(c.jobs, id)
	c.mu.Unlock()
	c.dropPreviews(id)
	if err == nil {
		c.s.metrics.jobs.WithLabelValues("ok").Inc()
		return
	}
	e := jobError(err)
	c.s.metrics.jobs.WithLabelValues(string(e.Code)).Inc()
	if e.Code == protocol.CodeInternal {
		log.Error("edit failed", "err", err)
	} else {
		log.Info("edit ended", "code", e.Code)
	}
	c.sendError(id, e)
}

func (c *conn) handleCancel(id string) {
	c.mu.Lock()
	t, ok := c.jobs[id]
	c.mu.Unlock()
	if !ok {
		c.sendError(id, &protocol.Error{Code: protocol.CodeNotFound, Message: "no queued or running request has this id", Field: "id"})
		return
	}
	t.Cancel()
}

// cancelAll cancels the socket's requests when it closes. A gateway that
// is shutting down leaves them running on the workers instead: their
// results land in the store, where the client finds them by sending the
// same request again to another gateway.
func (c *conn) cancelAll() {
	c.s.mu.Lock()
	keep := c.s.closing && c.s.cluster != nil
	c.s.mu.Unlock()
	if keep {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, t := range c.jobs {
		t.Cancel()
	}
}

// runEdit runs one edit on the engine, streaming previews and progress,
// then stores the images.
func (c *conn) runEdit(ctx context.Context, id string, spec edit.Spec, heatMaps bool, log *slog.Logger) (*protocol.Result, error) {
	s := c.s
	res, err := editjob.Run(ctx, s.engine, s.store, editjob.Request{ID: id, Spec: spec, HeatMaps: heatMaps, PhotoLimits: s.photoLimits()}, editjob.Events{
		Preview:  func(frame []byte, row int) { c.pushPreview(previewKey{id, row}, frame) },
		Progress: func(p protocol.Progress) { c.sendMessage(protocol.TypeProgress, id, p) },
	})
	if err != nil {
		return nil, err
	}
	s.metrics.jobSeconds.Observe(res.Timings.RunMS / 1000)
	s.metrics.stepSeconds.Observe(res.Timings.StepMS / 1000)
	log.Info("edit done", "run_ms", res.Timings.RunMS, "step_ms", res.Timings.StepMS)
	return res, nil
}

func jobError(err error) *protocol.Error {
	var pe *protocol.Error
	switch {
	case errors.As(err, &pe):
		return pe // from a cluster worker or gateway, ready for the client
	case errors.Is(err, queue.ErrCancelled):
		return &protocol.Error{Code: protocol.CodeCancelled, Message: "the request was cancelled"}
	case errors.Is(err, queue.ErrTimeout):
		return &protocol.Error{Code: protocol.CodeTimeout, Message: err.Error()}
	case errors.Is(err, queue.ErrClosed):
		return &protocol.Error{Code: protocol.CodeShutdown, Message: err.Error()}
	}
	return editjob.ErrorOf(err)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
