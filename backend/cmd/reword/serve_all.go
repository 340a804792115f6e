package main

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"

	"reword/backend/cluster"
	"reword/backend/server"
	"reword/backend/store"
)

// runAll is `reword serve --role all`: the whole deployment in one
// process. It runs the same path as a cluster (cluster.Local) — an
// embedded single-node NATS JetStream server (in process, no TCP port), a
// gateway with its fair admission queue, and one worker on the model's
// engine — so that role all and a cluster behave alike (turns between
// clients, queue positions, results stored by job). Gateway, worker and
// server share one store.
//
// Jobs wait in the NATS files under --nats-dir. Those a shutdown leaves
// there (waiting, or running past the 10 s grace) run on the next start,
// and their results land in the store, where a client that sends the same
// request again (or the same spec) finds them without waiting.
func runAll(ctx context.Context, o serveOptions) error {
	dir, err := embeddedNATSDir(o.natsDir, o.data)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, o.data, o.storeBytes)
	if err != nil {
		return err
	}
	defer st.Close()
	// The NATS folder is locked first, so that a second process given
	// the same folder fails before spending time on the model.
	node, err := cluster.StartNode(cluster.NodeConfig{Name: "reword", StoreDir: dir, InProcess: true})
	if err != nil {
		return fmt.Errorf("%w; role all takes that folder from --nats-dir (default <data>/nats)", err)
	}
	defer node.Shutdown()
	eng, status, err := loadModel(o)
	if eng == nil {
		if status.Dir == "" {
			return err // the model folder itself is unusable
		}
		// No model to run: serve the editor all the same, telling clients
		// why it cannot edit (missing files, a failed load). No edit can
		// run, so the NATS node stops now.
		node.Shutdown()
		if err == nil {
			o.log.Warn("model not ready; the editor will say so", "problem", status.Problem())
		}
		return serveEditor(ctx, o, server.NoModel(status, err), st, fmt.Sprintf("model %s, not ready", o.modelDir), nil)
	}
	defer eng.Close()
	local, err := cluster.StartLocal(ctx, cluster.LocalConfig{
		Node: node, Engine: eng, Store: st, Settings: o.settings, PhotoLimits: o.photoLimits(), Logger: o.log,
	})
	if err != nil {
		return err
	}
	o.log.Info("worker taking jobs", "model", eng.Defaults().Model, "nats", dir)
	// After it (deferred, in this order): the NATS server stops, then the
	// engine and the store close.
	return serveEditor(ctx, o, local.Gateway, st, "model "+o.modelDir+", jobs through the embedded NATS", local)
}

// embeddedNATSDir is where role all keeps its NATS files: --nats-dir, or
// <data>/nats when the data is a local folder.
func embeddedNATSDir(flagDir, data string) (string, error) {
	if flagDir != "" {
		return flagDir, nil
	}
	if u, err := url.Parse(data); err == nil && len(u.Scheme) > 1 {
		return "", usageError("--data %s is a blob URL: give --nats-dir, a local folder for the embedded NATS's files", u.Redacted())
	}
	return filepath.Join(data, "nats"), nil
}
