package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"reword/backend/cluster"
	"reword/backend/diffusion"
	"reword/backend/store"
	"reword/models/tiny/tinytest"
	"reword/shared/protocol"
)

// renamedTiny is a copy of the tiny model under another id: a second
// model for a gateway to serve.
func renamedTiny(t *testing.T, name string) string {
	t.Helper()
	dir := t.TempDir()
	must(t, tinytest.Copy(tinytest.Dir(t), dir))
	raw, err := os.ReadFile(filepath.Join(dir, "model.json"))
	must(t, err)
	var manifest map[string]any
	must(t, json.Unmarshal(raw, &manifest))
	manifest["name"] = name
	raw, err = json.Marshal(manifest)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "model.json"), raw, 0o644))
	return dir
}

// startWorkerOn runs a cluster worker on the model in dir until the test
// ends.
func (env *gatewayEnv) startWorkerOn(t *testing.T, dir string) {
	t.Helper()
	eng, err := diffusion.Load(dir, diffusion.Options{Threads: 1, Instrument: true})
	must(t, err)
	nc, err := nats.Connect(env.natsURL)
	must(t, err)
	st, err := store.Open(context.Background(), env.storeDir, 0)
	must(t, err)
	w, err := cluster.NewWorker(context.Background(), cluster.WorkerConfig{
		Name: filepath.Base(dir), Conn: nc, Engine: eng, Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	must(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		nc.Close()
		eng.Close()
		st.Close()
	})
}

// TestTwoModelsEachResolvesItsOwn: with two models served, the hello
// offers both, a spec naming either runs on it, resolved against that
// model's defaults; a spec naming none, or one nobody serves, is an
// invalid spec that lists the models; the gateway is ready.
func TestTwoModelsEachResolvesItsOwn(t *testing.T) {
	env := newGatewayServer(t)
	env.startWorker(t)
	deadline := time.Now().Add(30 * time.Second)
	for env.readyStatus(t) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("a gateway serving one model is not ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// One model: the hello names it, with nothing to choose from.
	if h := env.hello(t); h.Model.ID != "reword-tiny" || !h.Model.Ready || h.Models != nil {
		t.Errorf("hello with one model: %+v", h)
	}
	env.startWorkerOn(t, renamedTiny(t, "reword-tiny-b"))
	for env.readyStatus(t) != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatal("a gateway serving two models is not ready")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The hello offers both models to choose from, each ready with its
	// defaults; the model a spec naming none would run on is none.
	for {
		h := env.hello(t)
		if len(h.Models) == 2 {
			for i, want := range []string{"reword-tiny", "reword-tiny-b"} {
				if m := h.Models[i]; m.ID != want || !m.Ready || m.Defaults == nil {
					t.Errorf("hello's model %d: %+v, want %s ready with its defaults", i, m, want)
				}
			}
			if h.Model.Ready || !strings.Contains(h.Model.Problem, "name one in spec.model") {
				t.Errorf("hello's model for a spec naming none: %+v", h.Model)
			}
			// /healthz says the same.
			resp, err := http.Get(env.URL + "/healthz")
			must(t, err)
			var health struct{ Models []protocol.ModelInfo }
			must(t, json.NewDecoder(resp.Body).Decode(&health))
			resp.Body.Close()
			if len(health.Models) != 2 || health.Models[1].ID != "reword-tiny-b" {
				t.Errorf("/healthz models: %+v", health.Models)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hello lists %d models, want both: %+v", len(h.Models), h.Models)
		}
		time.Sleep(50 * time.Millisecond)
	}
	c := env.connect(t)
	for i, model := range []string{"reword-tiny", "reword-tiny-b"} {
		s := spec(uint64(i), 2)
		s.Model = model
		c.send(protocol.TypeRun, model, protocol.Run{Spec: s})
		_, last := c.until(protocol.TypeResult, protocol.TypeError)
		res, ok := last.Payload.(*protocol.Result)
		if !ok || res.Spec.Model != model || res.Spec.Steps == nil || *res.Spec.Steps != 2 {
			t.Fatalf("a spec naming %s: %s %+v", model, last.Type, last.Payload)
		}
	}
	for _, model := range []string{"", "reword-huge"} {
		s := spec(9, 2)
		s.Model = model
		c.send(protocol.TypeRun, "bad-"+model, protocol.Run{Spec: s})
		e, ok := c.answer("bad-" + model).Payload.(*protocol.Error)
		if !ok || e.Code != protocol.CodeInvalidSpec || e.Field != "spec.model" {
			t.Errorf("a spec naming %q with two models served: %+v", model, e)
		}
	}
}

// hello opens a socket and returns the server's hello.
func (ts *testServer) hello(t *testing.T) protocol.Hello {
	t.Helper()
	c, err := ts.dialWith(t, "", nil)
	must(t, err)
	defer c.ws.Close()
	m := c.next()
	h, ok := m.msg.Payload.(*protocol.Hello)
	if !ok {
		t.Fatalf("first message is not hello: %+v", m)
	}
	return *h
}
