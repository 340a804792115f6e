package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"reword/backend/cluster"
	"reword/backend/editjob"
	"reword/backend/store"
	"reword/shared/protocol"
)

// handleRun validates a run request and submits it to the executor.
// Everything the client sent is checked here again, whatever the browser
// already checked.
func (c *conn) handleRun(id string, run *protocol.Run) {
	s := c.s
	if id == "" { // its length was checked by protocol.Decode
		c.sendError("", &protocol.Error{Code: protocol.CodeBadMessage, Message: "a run needs a request id in the envelope's id", Field: "id"})
		return
	}
	// The defaults are the spec's model's: with several models served, a
	// spec names its model.
	entry, err := s.exec.Model(context.Background(), run.Spec.Model)
	switch {
	case errors.Is(err, cluster.ErrSeveralModels), errors.Is(err, cluster.ErrUnknownModel):
		c.sendError(id, &protocol.Error{Code: protocol.CodeInvalidSpec, Field: "spec.model", Message: err.Error(),
			Problems: []protocol.Problem{{Field: "spec.model", Message: err.Error()}}})
		return
	case err != nil:
		c.sendError(id, &protocol.Error{Code: protocol.CodeNotReady, Message: "the model is not ready: " + err.Error()})
		return
	}
	r, err := run.Spec.Resolve(entry.Defaults)
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
	if e := c.reserve(id); e != nil {
		c.sendError(id, e)
		return
	}
	// The photo is leased until the job ends, so that uploads meanwhile
	// cannot evict it while the job waits or runs.
	var photo *store.Lease
	if r.Image != "" {
		var err error
		if photo, err = s.store.Lease(context.Background(), r.Image); err != nil {
			c.unreserve(id)
			e := &protocol.Error{Code: protocol.CodeNotFound, Field: "spec.image", Message: editjob.ErrPhotoExpired.Error()}
			if !errors.Is(err, store.ErrNotFound) {
				s.log.Error("leasing a photo", "err", err)
				e = &protocol.Error{Code: protocol.CodeInternal, Message: "the photo could not be reserved for the edit: " + err.Error()}
			}
			c.sendError(id, e)
			return
		}
	}
	log := s.log.With("conn", c.id, "client", c.addr, "request", id)
	if !s.countAwait() {
		release(photo)
		c.unreserve(id)
		c.sendError(id, &protocol.Error{Code: protocol.CodeShutdown, Message: "the server is shutting down; reconnect and send the same request again"})
		return
	}
	t, err := s.exec.Submit(context.Background(), r.Model, c.addr, id, protocol.Run{Spec: spec, HeatMaps: run.HeatMaps}, c.events(id))
	if !c.submitted(id, t, err) {
		s.awaits.Done()
		release(photo)
		c.sendError(id, protocolError(err))
		return
	}
	log.Info("edit queued", "targets", len(r.Targets), "steps", r.Steps)
	go func() {
		defer release(photo)
		c.await(id, t, log)
	}()
}

func release(l *store.Lease) {
	if l != nil {
		l.Release()
	}
}

// countAwait counts a run about to be submitted among those whose end
// Shutdown waits to report, or reports false once Shutdown began. Counted
// before the submit and under the lock Shutdown sets closing under, a run
// is either counted before Shutdown waits or refused: a WaitGroup must not
// grow from zero while it is waited on.
func (s *Server) countAwait() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.awaits.Add(1)
	return true
}

// unreserve drops a reservation that will not be submitted.
func (c *conn) unreserve(id string) {
	c.mu.Lock()
	delete(c.jobs, id)
	c.mu.Unlock()
	c.s.releaseJob(c.addr)
}

// reserve holds the request id in c.jobs while the request is submitted,
// and counts it against the client's address, or says why it cannot: the
// id is in use on this socket, or the address has MaxPerClient requests
// already, from any of its sockets. c.mu is not held while the executor
// is called: it may call back at once (a job with a stored result
// delivers it inside Submit), and those callbacks take c.mu.
func (c *conn) reserve(id string) *protocol.Error {
	s := c.s
	s.mu.Lock()
	if max := s.cfg.MaxPerClient; s.addrJobs[c.addr] >= max {
		s.mu.Unlock()
		return &protocol.Error{Code: protocol.CodeTooMany, Message: fmt.Sprintf("too many requests from your address (%d queued or running, counting all its sockets): wait for one to finish or cancel one", max)}
	}
	s.addrJobs[c.addr]++
	s.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, dup := c.jobs[id]; dup {
		s.releaseJob(c.addr)
		return &protocol.Error{Code: protocol.CodeDuplicateID, Message: "a request with this id is already queued or running", Field: "id"}
	}
	c.jobs[id] = &pendingTicket{}
	return nil
}

// releaseJob uncounts a request of the client address addr.
func (s *Server) releaseJob(addr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.addrJobs[addr]--; s.addrJobs[addr] <= 0 {
		delete(s.addrJobs, addr)
	}
}

// submitted replaces the reservation of id by the request's ticket, or
// drops it when the submission failed. A cancel that arrived meanwhile
// (or the socket closing) is applied to the ticket now.
func (c *conn) submitted(id string, t cluster.Ticket, err error) bool {
	c.mu.Lock()
	pending, _ := c.jobs[id].(*pendingTicket)
	if err != nil {
		delete(c.jobs, id)
	} else {
		c.jobs[id] = t
	}
	c.mu.Unlock()
	if err != nil {
		c.s.releaseJob(c.addr)
	}
	if err == nil && pending != nil && pending.cancelled.Load() {
		t.Cancel()
	}
	return err == nil
}

// pendingTicket holds a request id in c.jobs while the request is being
// submitted; a cancel meanwhile is applied to the real ticket afterwards.
type pendingTicket struct{ cancelled atomic.Bool }

func (p *pendingTicket) Cancel()    { p.cancelled.Store(true) }
func (p *pendingTicket) Err() error { return nil }

// events relays a request's job events to this socket.
func (c *conn) events(id string) cluster.Events {
	return cluster.Events{
		Queued:   func(q protocol.Queued) { c.sendMessage(protocol.TypeQueued, id, q) },
		Started:  func(st protocol.Started) { c.sendMessage(protocol.TypeStarted, id, st) },
		Progress: func(p protocol.Progress) { c.sendMessage(protocol.TypeProgress, id, p) },
		Preview:  func(frame []byte, row int) { c.pushPreview(previewKey{id, row}, frame) },
		Result: func(res *protocol.Result) {
			if !res.Cached {
				c.s.metrics.jobSeconds.Observe(res.Timings.RunMS / 1000)
				c.s.metrics.stepSeconds.Observe(res.Timings.StepMS / 1000)
			}
			// Pending previews are dropped first, so that none is
			// written after the result.
			c.dropPreviews(id)
			c.sendMessage(protocol.TypeResult, id, res)
		},
	}
}

// await reports how a submitted request ended, unless it produced a result.
func (c *conn) await(id string, t cluster.Ticket, log *slog.Logger) {
	defer c.s.awaits.Done()
	err := t.Err()
	c.mu.Lock()
	delete(c.jobs, id)
	c.mu.Unlock()
	c.s.releaseJob(c.addr)
	c.dropPreviews(id)
	if err == nil {
		c.s.metrics.jobs.WithLabelValues("ok").Inc()
		return
	}
	e := protocolError(err)
	c.s.metrics.jobs.WithLabelValues(string(e.Code)).Inc()
	if e.Code == protocol.CodeInternal {
		log.Error("edit failed", "err", err)
	} else {
		log.Info("edit ended", "code", e.Code)
	}
	c.sendError(id, e)
}

// protocolError is what the client is told about a failed submission or
// job. The executor says it in protocol terms already (cluster's
// admissionError and its workers); anything else is the server's fault.
func protocolError(err error) *protocol.Error {
	var pe *protocol.Error
	if errors.As(err, &pe) {
		return pe
	}
	return &protocol.Error{Code: protocol.CodeInternal, Message: "the edit failed: " + err.Error()}
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

// cancelAll cancels the socket's requests when it closes. A server that is
// shutting down leaves them running on the workers instead: their results
// land in the store, where the client finds them by sending the same
// request again (to this process's next start, or another gateway).
func (c *conn) cancelAll() {
	c.s.mu.Lock()
	keep := c.s.closing
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
