package cluster

import (
	"context"
	"errors"
	"log/slog"
	"os"

	"github.com/nats-io/nats.go"

	"reword/backend/photo"
	"reword/backend/store"
)

// LocalConfig is what a whole deployment in one process needs.
type LocalConfig struct {
	// Node is the embedded NATS node the jobs go through (StartNode,
	// usually InProcess); the caller shuts it down after Close.
	Node *Node
	// Engine runs the jobs of the one worker.
	Engine Engine
	// Store is shared by the gateway, the worker and the caller's server.
	Store       *store.Store
	Settings    Settings
	PhotoLimits photo.Limits
	Logger      *slog.Logger
}

// Local is reword serve's role all: a gateway and one worker on an
// embedded NATS node, in one process. It is the same path as a cluster —
// fair admission, the job stream, results stored by job — with every
// piece in process.
type Local struct {
	Gateway *Gateway
	Worker  *Worker

	conns      []*nats.Conn
	stopWorker context.CancelFunc
	workerDone chan struct{}
}

// StartLocal connects a gateway and a worker to cfg.Node and starts the
// worker taking jobs. The worker is the node's only one (WorkerConfig.Sole).
func StartLocal(ctx context.Context, cfg LocalConfig) (*Local, error) {
	if cfg.Node == nil {
		return nil, errNoNode
	}
	l := &Local{}
	ok := false
	defer func() {
		if !ok {
			l.closeConns()
		}
	}()
	gwConn, err := cfg.Node.Connect(nats.Name("reword-gateway"))
	if err != nil {
		return nil, err
	}
	l.conns = append(l.conns, gwConn)
	wConn, err := cfg.Node.Connect(nats.Name("reword-worker"))
	if err != nil {
		return nil, err
	}
	l.conns = append(l.conns, wConn)
	if l.Gateway, err = NewGateway(ctx, GatewayConfig{Conn: gwConn, Store: cfg.Store, Settings: cfg.Settings, Logger: cfg.Logger}); err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	l.Worker, err = NewWorker(ctx, WorkerConfig{
		Name: host, Conn: wConn, Engine: cfg.Engine, Store: cfg.Store, Settings: cfg.Settings,
		PhotoLimits: cfg.PhotoLimits, Logger: cfg.Logger, Sole: true,
	})
	if err != nil {
		l.Gateway.Close()
		return nil, err
	}
	// The worker outlives the caller's ctx (a signal): Drain lets its
	// running edit finish, and Close ends it when the grace period is over.
	workerCtx, stop := context.WithCancel(context.Background())
	l.stopWorker, l.workerDone = stop, make(chan struct{})
	go func() {
		defer close(l.workerDone)
		l.Worker.Run(workerCtx)
	}()
	ok = true
	return l, nil
}

// Drain makes the worker take no further job: the one it runs goes on to
// its end. The gateway is drained by the server's Shutdown.
func (l *Local) Drain() { l.Worker.Drain() }

// Close drains the worker and closes the gateway, waits until ctx is done
// for the worker's running edit (one stopped then is handed back to the
// stream and runs again on the next start), then stops the worker and
// closes the NATS connections. It reports whether an edit was stopped.
func (l *Local) Close(ctx context.Context) (stopped bool) {
	l.Worker.Drain()
	l.Gateway.Close()
	select {
	case <-l.workerDone:
	case <-ctx.Done():
		stopped = true
	}
	l.stopWorker()
	<-l.workerDone
	l.closeConns()
	return stopped
}

func (l *Local) closeConns() {
	for _, c := range l.conns {
		c.Close()
	}
	l.conns = nil
}

// errNoNode is StartLocal's error without a node.
var errNoNode = errors.New("cluster: a local deployment needs an embedded NATS node")
