// Package queue runs jobs on a fixed number of workers: bounded (a full
// queue answers ErrBusy at once instead of growing), fair (clients take
// turns, so one client's ten jobs do not starve another's one), limited per
// client, cancellable at any point, and timed out per job. A cluster
// gateway admits edits through one per model (backend/cluster,
// admission.go), its workers being the slots of the job stream.
//
// Jobs are plain functions of a context; the queue knows nothing about
// models or NATS, so it is tested on its own.
package queue

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"
	"time"

	"reword/shared/limits"
)

// Errors returned by Submit.
var (
	// ErrBusy means the queue holds MaxQueued jobs already.
	ErrBusy = errors.New("the server is busy: the job queue is full, try again shortly")
	// ErrClientLimit means this client already has MaxPerClient jobs waiting or running.
	ErrClientLimit = errors.New("too many jobs from this client: wait for one to finish or cancel one")
	// ErrClosed means the queue is shutting down.
	ErrClosed = errors.New("the server is shutting down")
)

// Config sizes the queue.
type Config struct {
	// Workers run jobs concurrently; the default is 1 (one engine per model).
	Workers int
	// MaxQueued bounds the jobs waiting (not running) across all clients.
	MaxQueued int
	// MaxPerClient bounds one client's jobs, waiting and running.
	MaxPerClient int
	// JobTimeout cancels a job that runs longer; 0 means no limit.
	JobTimeout time.Duration
}

func (c Config) withDefaults() (Config, error) {
	if c.Workers == 0 {
		c.Workers = 1
	}
	if c.MaxQueued == 0 {
		c.MaxQueued = limits.QueuedJobs
	}
	if c.MaxPerClient == 0 {
		c.MaxPerClient = limits.JobsPerClient
	}
	switch {
	case c.Workers < 0:
		return c, fmt.Errorf("queue: workers must be ≥ 1, got %d", c.Workers)
	case c.MaxQueued < 0:
		return c, fmt.Errorf("queue: max queued must be ≥ 1, got %d", c.MaxQueued)
	case c.MaxPerClient < 0:
		return c, fmt.Errorf("queue: max per client must be ≥ 1, got %d", c.MaxPerClient)
	case c.JobTimeout < 0:
		return c, fmt.Errorf("queue: job timeout must be ≥ 0, got %v", c.JobTimeout)
	}
	return c, nil
}

// Job is work submitted to the queue.
type Job struct {
	// Client identifies who submitted it, for fairness and limits.
	Client string
	// Run does the work. Its context is cancelled when the job is
	// cancelled, times out, or the queue closes.
	Run func(ctx context.Context) error
	// OnPosition, if set, is called with the job's place in line (0 = next)
	// whenever it changes while the job waits. It must not block.
	OnPosition func(position int)
	// OnStart, if set, is called when a worker picks the job up.
	OnStart func()
	// OnPicked, if set, is called under the queue's lock when a worker
	// takes the job, before the jobs behind it are told their new places:
	// whoever counts jobs in the queue and after it sees the job leave
	// one count and join the other at once. It must not block. A job
	// cancelled once picked is not run, so OnStart need not follow.
	OnPicked func()
}

// Ticket follows a submitted job.
type Ticket struct {
	job    Job
	q      *Queue
	ctx    context.Context
	cancel context.CancelCauseFunc
	done   chan struct{}
	err    error
	pos    int // last position reported; -1 once picked, or cancelled while waiting
}

// Cancel stops the job: a waiting job leaves the queue, a running one has
// its context cancelled. It is safe to call many times and after the end.
func (t *Ticket) Cancel() { t.q.cancel(t, ErrCancelled) }

// ErrCancelled is the result of a job cancelled through its ticket.
var ErrCancelled = errors.New("the job was cancelled")

// ErrTimeout is the result of a job that ran past Config.JobTimeout.
var ErrTimeout = errors.New("the job took too long and was stopped")

// Position is the job's place in line (0 = next) while it waits, and -1
// once a worker has taken it or it has left the line.
func (t *Ticket) Position() int {
	t.q.mu.Lock()
	defer t.q.mu.Unlock()
	return max(t.pos, -1)
}

// Done is closed when the job has finished, failed or been cancelled.
func (t *Ticket) Done() <-chan struct{} { return t.done }

// Err is the job's result once Done is closed: nil, the job's own error,
// ErrCancelled, ErrTimeout or ErrClosed.
func (t *Ticket) Err() error {
	<-t.done
	return t.err
}

// Queue schedules jobs. Create it with New and stop it with Close.
type Queue struct {
	cfg Config

	mu      sync.Mutex
	waiting map[string][]*Ticket // per client, FIFO
	ring    []string             // clients with waiting jobs, in turn order
	active  map[string]int       // per client: waiting + running
	running map[*Ticket]bool
	queued  int
	closed  bool
	wake    chan struct{}
	wg      sync.WaitGroup
}

// New starts the workers.
func New(cfg Config) (*Queue, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	q := &Queue{
		cfg:     cfg,
		waiting: map[string][]*Ticket{},
		active:  map[string]int{},
		running: map[*Ticket]bool{},
		wake:    make(chan struct{}, cfg.Workers),
	}
	for range cfg.Workers {
		q.wg.Add(1)
		go q.worker()
	}
	return q, nil
}

// Submit adds a job, or fails at once with ErrBusy, ErrClientLimit or
// ErrClosed.
func (q *Queue) Submit(job Job) (*Ticket, error) {
	if job.Run == nil {
		return nil, errors.New("queue: job has no Run function")
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case q.closed:
		return nil, ErrClosed
	case q.active[job.Client] >= q.cfg.MaxPerClient:
		return nil, ErrClientLimit
	case q.queued >= q.cfg.MaxQueued:
		return nil, ErrBusy
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	t := &Ticket{job: job, q: q, ctx: ctx, cancel: cancel, done: make(chan struct{}), pos: -2}
	if len(q.waiting[job.Client]) == 0 {
		q.ring = append(q.ring, job.Client)
	}
	q.waiting[job.Client] = append(q.waiting[job.Client], t)
	q.active[job.Client]++
	q.queued++
	q.notifyPositionsLocked()
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return t, nil
}

// Len reports how many jobs wait and how many run.
func (q *Queue) Len() (waiting, running int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.queued, len(q.running)
}

// next takes the first job of the client whose turn it is, rotating that
// client to the back of the ring: round-robin across clients.
func (q *Queue) nextLocked() *Ticket {
	if len(q.ring) == 0 {
		return nil
	}
	client := q.ring[0]
	q.ring = q.ring[1:]
	jobs := q.waiting[client]
	t := jobs[0]
	if len(jobs) == 1 {
		delete(q.waiting, client)
	} else {
		q.waiting[client] = jobs[1:]
		q.ring = append(q.ring, client)
	}
	q.queued--
	return t
}

// notifyPositionsLocked tells every waiting job its place in the
// round-robin order, when it changed.
func (q *Queue) notifyPositionsLocked() {
	pos := 0
	for round := 0; ; round++ {
		any := false
		for _, c := range q.ring {
			jobs := q.waiting[c]
			if round < len(jobs) {
				any = true
				t := jobs[round]
				if t.pos != pos && t.job.OnPosition != nil {
					t.job.OnPosition(pos)
				}
				t.pos = pos
				pos++
			}
		}
		if !any {
			return
		}
	}
}

func (q *Queue) worker() {
	defer q.wg.Done()
	for {
		q.mu.Lock()
		t := q.nextLocked()
		closed := q.closed
		if t != nil {
			q.running[t] = true
			t.pos = -1
			if t.job.OnPicked != nil {
				t.job.OnPicked()
			}
			q.notifyPositionsLocked()
		}
		q.mu.Unlock()
		if t == nil {
			if closed {
				return
			}
			<-q.wake
			continue
		}
		q.runJob(t)
	}
}

func (q *Queue) runJob(t *Ticket) {
	ctx := t.ctx
	if q.cfg.JobTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, q.cfg.JobTimeout, ErrTimeout)
		defer cancel()
	}
	var err error
	if ctx.Err() == nil {
		if t.job.OnStart != nil {
			t.job.OnStart()
		}
		err = runRecovered(ctx, t.job.Run)
	}
	if cause := context.Cause(ctx); cause != nil && (err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		err = cause
	}
	q.mu.Lock()
	delete(q.running, t)
	q.active[t.job.Client]--
	if q.active[t.job.Client] == 0 {
		delete(q.active, t.job.Client)
	}
	q.mu.Unlock()
	q.finish(t, err)
}

// runRecovered runs a job and turns a panic into its error, so that one
// bad job ends as a failed request instead of taking the server down.
func runRecovered(ctx context.Context, run func(context.Context) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v\n%s", ErrPanic, r, debug.Stack())
		}
	}()
	return run(ctx)
}

// ErrPanic wraps the value of a job that panicked (with its stack).
var ErrPanic = errors.New("the job panicked")

func (q *Queue) finish(t *Ticket, err error) {
	t.err = err
	t.cancel(nil)
	close(t.done)
}

func (q *Queue) cancel(t *Ticket, cause error) {
	q.mu.Lock()
	jobs := q.waiting[t.job.Client]
	for i, w := range jobs {
		if w != t {
			continue
		}
		// Still waiting: take it out of line and finish it here.
		jobs = append(jobs[:i:i], jobs[i+1:]...)
		if len(jobs) == 0 {
			delete(q.waiting, t.job.Client)
			q.removeFromRingLocked(t.job.Client)
		} else {
			q.waiting[t.job.Client] = jobs
		}
		q.queued--
		q.active[t.job.Client]--
		if q.active[t.job.Client] == 0 {
			delete(q.active, t.job.Client)
		}
		t.pos = -1
		q.notifyPositionsLocked()
		q.mu.Unlock()
		q.finish(t, cause)
		return
	}
	q.mu.Unlock()
	// Running (or finished): cancelling its context is enough.
	t.cancel(cause)
}

func (q *Queue) removeFromRingLocked(client string) {
	for i, c := range q.ring {
		if c == client {
			q.ring = append(q.ring[:i], q.ring[i+1:]...)
			return
		}
	}
}

// Close stops accepting jobs and cancels the waiting ones. Running jobs may
// finish until ctx is done; then they are cancelled too. Close returns when
// every worker has stopped, so no goroutine outlives it.
func (q *Queue) Close(ctx context.Context) {
	q.mu.Lock()
	q.closed = true
	var waiting []*Ticket
	for _, c := range q.ring {
		waiting = append(waiting, q.waiting[c]...)
	}
	q.mu.Unlock()
	for _, t := range waiting {
		q.cancel(t, ErrClosed)
	}
	for range q.cfg.Workers {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	stopped := make(chan struct{})
	go func() {
		q.wg.Wait()
		close(stopped)
	}()
	select {
	case <-stopped:
		return
	case <-ctx.Done():
	}
	q.mu.Lock()
	for t := range q.running {
		t.cancel(ErrClosed)
	}
	q.mu.Unlock()
	<-stopped
}
