package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"

	"reword/backend/cluster"
	"reword/backend/diffusion"
	"reword/backend/model"
	"reword/backend/server"
	"reword/backend/store"
)

// runAll is `reword serve --role all`: the whole deployment in one
// process. It runs the same path as a cluster — an embedded single-node
// NATS JetStream server (in process, no TCP port), a gateway with its fair
// admission queue, and one worker on the model's engine — so that role all
// and a cluster behave alike (turns between clients, queue positions,
// results stored by job). Gateway, worker and server share one store.
//
// Jobs wait in the NATS files under --nats-dir. Those a shutdown leaves
// there (waiting, or running past the 10 s grace) run on the next start,
// and their results land in the store, where a client that sends the same
// request again (or the same spec) finds them without waiting.
func runAll(ctx context.Context, o serveOptions) error {
	modelDir := o.server.ModelDir
	dir, err := embeddedNATSDir(o.natsDir, o.data)
	if err != nil {
		return err
	}
	status, err := model.Check(modelDir)
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
	eng, loadErr := loadForAll(modelDir, status, o)
	if eng == nil {
		// No model to run: serve the editor all the same, telling clients
		// why it cannot edit (missing files, a failed load), as before.
		node.Shutdown()
		return serveWithoutModel(ctx, o, st, loadErr)
	}
	defer eng.Close()
	gwConn, err := node.Connect(nats.Name("reword-gateway"))
	if err != nil {
		return err
	}
	defer gwConn.Close()
	wConn, err := node.Connect(nats.Name("reword-worker"))
	if err != nil {
		return err
	}
	defer wConn.Close()
	gateway, err := cluster.NewGateway(ctx, cluster.GatewayConfig{Conn: gwConn, Store: st, Settings: o.settings, Logger: o.log})
	if err != nil {
		return err
	}
	defer gateway.Close()
	host, _ := os.Hostname()
	worker, err := cluster.NewWorker(ctx, cluster.WorkerConfig{
		Name: host, Conn: wConn, Engine: eng, Store: st, Settings: o.settings, PhotoLimits: o.photoLimits(), Logger: o.log, Sole: true,
	})
	if err != nil {
		return err
	}
	// The worker outlives ctx (the signal): Drain lets its running edit
	// finish, and hardStop ends it when the grace period is over.
	workerCtx, hardStop := context.WithCancel(context.Background())
	workerDone := make(chan struct{})
	go func() {
		defer close(workerDone)
		worker.Run(workerCtx)
	}()
	defer func() {
		hardStop()
		<-workerDone
	}()
	o.log.Info("worker taking jobs", "model", eng.Defaults().Model, "nats", dir)

	cfg := o.server
	cfg.Cluster, cfg.OpenStore = gateway, st
	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
	httpSrv, err := serveHTTP(ctx, srv, o, "model "+modelDir+", jobs through the embedded NATS")
	if err != nil {
		return err
	}
	o.log.Info("shutting down: finishing running edits for up to 10 s")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// Take no more jobs, and end those no worker has taken with the
	// shutdown error, so that the grace period goes to the running edit:
	// the server waits for its result before closing the sockets.
	worker.Drain()
	gateway.Drain()
	err = shutdownHTTP(shutdownCtx, srv, httpSrv)
	gateway.Close()
	select {
	case <-workerDone:
	case <-shutdownCtx.Done():
		o.log.Info("an edit still running after 10 s is stopped; it runs again on the next start")
	}
	// Then (deferred, in this order): the worker stops, the NATS
	// connections and server close, the engine and the store.
	return err
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

// loadForAll loads the model for role all's worker. It returns a nil
// engine when the folder lacks files (the server reports which) or the
// load failed (the error says why).
func loadForAll(dir string, status model.Status, o serveOptions) (*diffusion.Engine, error) {
	if !status.Ready() {
		o.log.Warn("model not ready; the editor will say so", "problem", status.Problem())
		return nil, nil
	}
	t0 := time.Now()
	eng, err := diffusion.Load(dir, o.engine)
	if err != nil {
		o.log.Error("loading the model failed; edits are refused", "model", dir, "err", err)
		return nil, err
	}
	o.log.Info("model loaded", "model", dir, "took", time.Since(t0).Round(time.Millisecond))
	return eng, nil
}

// serveWithoutModel serves the editor when role all has no model to run.
// No edit can run, so no NATS is started; the server reports the model's
// problem in hello, /healthz and /readyz (503).
func serveWithoutModel(ctx context.Context, o serveOptions, st *store.Store, loadErr error) error {
	cfg := o.server
	cfg.OpenStore, cfg.ModelError = st, loadErr
	srv, err := server.New(cfg)
	if err != nil {
		return err
	}
	httpSrv, err := serveHTTP(ctx, srv, o, fmt.Sprintf("model %s, not ready", o.server.ModelDir))
	if err != nil {
		return err
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return shutdownHTTP(shutdownCtx, srv, httpSrv)
}
