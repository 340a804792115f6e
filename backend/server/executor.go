package server

import (
	"context"
	"errors"

	"reword/backend/cluster"
	"reword/backend/model"
	"reword/shared/protocol"
)

// Executor runs the edits a server accepts. In every role of reword serve
// it is a *cluster.Gateway (role all: cluster.Local's, on an embedded
// NATS); a process with no model to run serves the editor with NoModel.
type Executor interface {
	// Model returns the model a spec naming id runs on ("": the only
	// one). When no model can run, the error says why, and the entry's
	// Info may say more (missing files).
	Model(ctx context.Context, id string) (cluster.ModelEntry, error)
	// Models lists the models that can run now.
	Models(ctx context.Context) ([]cluster.ModelEntry, error)
	// Submit queues a resolved run of the request requestID from client
	// (a socket, for fairness and limits). It fails at once with a
	// *protocol.Error when the run is refused; the ticket reports how it
	// ended, its events stream what it does.
	Submit(ctx context.Context, model, client, requestID string, run protocol.Run, ev cluster.Events) (cluster.Ticket, error)
	// Drain ends the jobs that no worker has started with the shutdown
	// error and refuses new ones; started jobs run on.
	Drain()
	// Len counts the jobs waiting and running.
	Len() (waiting, running int)
}

var _ Executor = (*cluster.Gateway)(nil)

// NoModel is the executor of a process whose model cannot run: a folder
// with missing files (status.Missing) or one that failed to load
// (loadErr). It runs nothing and tells every client why.
func NoModel(status model.Status, loadErr error) Executor {
	info := protocol.ModelInfo{ID: status.ID, Problem: status.Problem(), Missing: status.Missing}
	if loadErr != nil {
		info.Problem = loadErr.Error()
	}
	if info.Problem == "" {
		info.Problem = "no model is loaded"
	}
	return noModel{info}
}

type noModel struct{ info protocol.ModelInfo }

func (n noModel) Model(context.Context, string) (cluster.ModelEntry, error) {
	return cluster.ModelEntry{Info: n.info}, errors.New(n.info.Problem)
}

func (n noModel) Models(context.Context) ([]cluster.ModelEntry, error) { return nil, nil }

func (n noModel) Submit(context.Context, string, string, string, protocol.Run, cluster.Events) (cluster.Ticket, error) {
	return nil, &protocol.Error{Code: protocol.CodeNotReady, Message: "the model is not ready: " + n.info.Problem}
}

func (noModel) Drain()                      {}
func (noModel) Len() (waiting, running int) { return 0, 0 }
