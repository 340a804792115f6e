package cluster

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"reword/backend/diffusion"
	"reword/models/tiny/tinytest"
	"reword/shared/edit"
	"reword/shared/protocol"
)

// TestSoleWorkerForgetsOtherModels: a sole worker (role all) starting on a
// NATS that an earlier run used for another model removes that model's
// registration and its waiting jobs, and keeps its own model's jobs.
func TestSoleWorkerForgetsOtherModels(t *testing.T) {
	c := newTestCluster(t, 1, 1, 0, Settings{})
	g := c.gateways[0]
	ctx := context.Background()
	// What an earlier run on model "old" left behind.
	must(t, putModel(ctx, g.models, ModelEntry{Info: protocol.ModelInfo{ID: "old", Ready: true}, Defaults: edit.Defaults{Model: "old"}}))
	_, err := g.js.Publish(ctx, jobSubject("old"), []byte("{}"))
	must(t, err)

	eng, err := diffusion.Load(tinytest.Dir(t), diffusion.Options{Threads: 1, Instrument: true})
	must(t, err)
	defer eng.Close()
	own := eng.Defaults().Model
	_, err = g.js.Publish(ctx, jobSubject(own), []byte("{}"))
	must(t, err)
	conn := c.connect()
	defer conn.Close()
	st := c.openStore()
	defer st.Close()
	w, err := NewWorker(ctx, WorkerConfig{Name: "sole", Conn: conn, Engine: eng, Store: st, Logger: quiet, Sole: true})
	must(t, err)
	defer w.cancels.Unsubscribe()

	models, err := g.Models(ctx)
	must(t, err)
	if len(models) != 1 || models[0].Defaults.Model != own {
		t.Errorf("models after a sole worker started: %+v, want only %s", models, own)
	}
	info, err := g.stream.Info(ctx, jetstream.WithSubjectFilter(jobSubjectPrefix+"*"))
	must(t, err)
	if n := info.State.Subjects[jobSubject("old")]; n != 0 {
		t.Errorf("%d jobs of the old model left in the stream", n)
	}
	if n := info.State.Subjects[jobSubject(own)]; n != 1 {
		t.Errorf("%d jobs of the worker's own model in the stream, want 1", n)
	}
}
