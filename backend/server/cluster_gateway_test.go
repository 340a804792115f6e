package server

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
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

// gatewayEnv is a server in gateway mode: an embedded NATS node, the
// cluster gateway the server submits to, and a blob store folder shared
// with the workers, as separate machines sharing a bucket would have.
type gatewayEnv struct {
	*testServer
	natsURL  string
	storeDir string
}

func newGatewayServer(t *testing.T) *gatewayEnv { return newGatewayServerLogging(t, io.Discard) }

// newGatewayServerLogging is newGatewayServer with the gateway's log kept.
func newGatewayServerLogging(t *testing.T, logs io.Writer) *gatewayEnv {
	t.Helper()
	node, err := cluster.StartNode(cluster.NodeConfig{StoreDir: t.TempDir()})
	must(t, err)
	t.Cleanup(node.Shutdown)
	env := &gatewayEnv{natsURL: node.ClientURL(), storeDir: t.TempDir()}
	nc, err := nats.Connect(env.natsURL)
	must(t, err)
	st, err := store.Open(context.Background(), env.storeDir, 0)
	must(t, err)
	gw, err := cluster.NewGateway(context.Background(), cluster.GatewayConfig{
		Conn: nc, Store: st, Logger: slog.New(slog.NewTextHandler(logs, nil)),
	})
	must(t, err)
	// Registered before the server's own cleanup, so it runs after it:
	// the gateway is closed after Shutdown, as Config.Executor asks.
	t.Cleanup(func() {
		gw.Close()
		nc.Close()
		st.Close()
	})
	env.testServer = newTestServer(t, gw, func(c *Config) { c.Store = env.storeDir })
	return env
}

// startWorker runs a cluster worker on the real tiny model, with its own
// NATS connection and its own store on the shared folder, until the test
// ends.
func (env *gatewayEnv) startWorker(t *testing.T) *cluster.Worker {
	t.Helper()
	eng, err := diffusion.Load(tinytest.Dir(t), diffusion.Options{Threads: 1, Instrument: true})
	must(t, err)
	nc, err := nats.Connect(env.natsURL)
	must(t, err)
	st, err := store.Open(context.Background(), env.storeDir, 0)
	must(t, err)
	w, err := cluster.NewWorker(context.Background(), cluster.WorkerConfig{
		Name: "w1", Conn: nc, Engine: eng, Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
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
	return w
}

func (ts *testServer) readyStatus(t *testing.T) int {
	t.Helper()
	resp, err := http.Get(ts.URL + "/readyz")
	must(t, err)
	resp.Body.Close()
	return resp.StatusCode
}

// TestGatewayModeOverWebSocket runs the /ws protocol on a server in
// gateway mode: it loads no model, learns the model from the worker's
// registration, and relays a real edit run by a cluster worker on the
// tiny model, whose images it serves from the shared store.
func TestGatewayModeOverWebSocket(t *testing.T) {
	env := newGatewayServer(t)

	// No worker yet: the gateway says so, and is not ready.
	c := env.connect(t)
	if st := env.readyStatus(t); st != http.StatusServiceUnavailable {
		t.Errorf("readyz without a worker = %d, want 503", st)
	}
	c.send(protocol.TypeRun, "early", protocol.Run{Spec: spec(1, 2)})
	if e, ok := c.next().msg.Payload.(*protocol.Error); !ok || e.Code != protocol.CodeNotReady || !strings.Contains(e.Message, "no GPU worker") {
		t.Errorf("run without a worker: %+v", e)
	}

	w := env.startWorker(t)
	if st := env.readyStatus(t); st != http.StatusOK {
		t.Fatalf("readyz once the worker registered = %d, want 200", st)
	}
	c2, err := env.dial(t, "")
	must(t, err)
	hello, ok := c2.next().msg.Payload.(*protocol.Hello)
	if !ok {
		t.Fatal("first message is not hello")
	}
	if m := hello.Model; !m.Ready || m.ID == "" || m.Defaults == nil || m.Defaults.Steps < 1 || len(m.Defaults.Sizes) == 0 {
		t.Fatalf("hello from the gateway: %+v", m)
	}
	c = c2

	// A run streams started, progress and previews, then the result.
	s := spec(3, 4)
	s.Reweights = map[string]float64{"blue": 1.5}
	c.send(protocol.TypeRun, "edit-1", protocol.Run{Spec: s})
	events, last := c.until(protocol.TypeResult, protocol.TypeError)
	if last.Type != protocol.TypeResult {
		t.Fatalf("run ended with %s %+v", last.Type, last.Payload)
	}
	var started *protocol.Started
	previews, progress := 0, 0
	rows := map[int]bool{}
	for _, e := range events {
		switch {
		case e.preview != nil:
			if started == nil {
				t.Fatal("a preview arrived before started")
			}
			if p := e.preview; p.ID != "edit-1" || len(p.Pixels) != 4*p.Width*p.Height {
				t.Errorf("preview %+v", p)
			}
			rows[e.preview.Row] = true
			previews++
		case e.msg.Type == protocol.TypeStarted:
			started = e.msg.Payload.(*protocol.Started)
		case e.msg.Type == protocol.TypeProgress:
			progress++
		}
		if e.msg != nil && e.msg.ID != "edit-1" {
			t.Errorf("a %s message for request %q", e.msg.Type, e.msg.ID)
		}
	}
	if started == nil || started.Steps != 4 || len(started.Rows) != 2 {
		t.Fatalf("started = %+v", started)
	}
	if previews == 0 || progress == 0 || len(rows) != 2 {
		t.Errorf("%d previews over rows %v, %d progress messages", previews, rows, progress)
	}
	res := last.Payload.(*protocol.Result)
	if len(res.Images) != 2 || res.Cached || res.Spec.Reweights["blue"] != 1.5 || *res.Spec.Steps != 4 {
		t.Fatalf("result = %+v", res)
	}
	// The worker wrote the PNGs; the gateway serves them from the store.
	for _, im := range res.Images {
		resp, err := http.Get(env.URL + im.URL)
		must(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/png" || len(b) < 100 {
			t.Errorf("image %s from the gateway: %d, %d bytes", im.URL, resp.StatusCode, len(b))
		}
	}
	if st := w.Stats(); st.Completed != 1 {
		t.Errorf("worker stats after one run: %+v", st)
	}
	// The same spec again comes from the shared store, not the worker.
	c.send(protocol.TypeRun, "edit-2", protocol.Run{Spec: s})
	_, last = c.until(protocol.TypeResult, protocol.TypeError)
	if again, ok := last.Payload.(*protocol.Result); !ok || !again.Cached || again.Images[1].Hash != res.Images[1].Hash {
		t.Errorf("the same spec again: %+v", last.Payload)
	}

	// An invalid spec is refused by the gateway with every problem,
	// checked against the defaults the worker registered.
	bad := spec(1, 500)
	g := 99.0
	bad.Guidance = &g
	c.send(protocol.TypeRun, "bad", protocol.Run{Spec: bad})
	e, ok := c.next().msg.Payload.(*protocol.Error)
	if !ok || e.Code != protocol.CodeInvalidSpec {
		t.Fatalf("invalid spec: %+v", e)
	}
	fields := map[string]bool{}
	for _, p := range e.Problems {
		fields[p.Field] = true
	}
	if !fields["spec.steps"] || !fields["spec.guidance"] {
		t.Errorf("problems %+v do not name spec.steps and spec.guidance", e.Problems)
	}

	// A cancel mid-run reaches the worker, which stops and takes the
	// next job.
	c.send(protocol.TypeRun, "long", protocol.Run{Spec: spec(5, 150)})
	c.until(protocol.TypeProgress)
	c.send(protocol.TypeCancel, "long", protocol.Cancel{})
	_, last = c.until(protocol.TypeError, protocol.TypeResult)
	if e, ok := last.Payload.(*protocol.Error); !ok || e.Code != protocol.CodeCancelled {
		t.Fatalf("after cancel: %s %+v", last.Type, last.Payload)
	}
	deadline := time.Now().Add(30 * time.Second)
	for w.Stats().Cancelled != 1 || len(w.Running()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the worker did not stop the cancelled job: %+v, running %v", w.Stats(), w.Running())
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.send(protocol.TypeRun, "next", protocol.Run{Spec: spec(6, 2)})
	if _, last = c.until(protocol.TypeResult, protocol.TypeError); last.Type != protocol.TypeResult {
		t.Errorf("the run after a cancel: %+v", last.Payload)
	}
	if st := w.Stats(); st.Completed != 2 || st.Cancelled != 1 || st.Failed != 0 {
		t.Errorf("worker stats at the end: %+v", st)
	}

	// Health reports the registered model too.
	resp, err := http.Get(env.URL + "/healthz")
	must(t, err)
	var health struct{ Model protocol.ModelInfo }
	must(t, json.NewDecoder(resp.Body).Decode(&health))
	resp.Body.Close()
	if !health.Model.Ready || health.Model.ID != hello.Model.ID {
		t.Errorf("healthz model = %+v", health.Model)
	}
}

// TestGatewayStoredResultOfSameRequest sends a finished run again with the
// same request id (as a client does after reconnecting). The gateway finds
// the job's result in the store inside cluster.Submit and delivers it at
// once; the socket must answer it rather than deadlock on its own lock.
func TestGatewayStoredResultOfSameRequest(t *testing.T) {
	env := newGatewayServer(t)
	env.startWorker(t)
	c := env.connect(t)
	run := protocol.Run{Spec: spec(7, 2), HeatMaps: true} // heat maps: not answered by editjob.Cached
	c.send(protocol.TypeRun, "again", run)
	if _, last := c.until(protocol.TypeResult, protocol.TypeError); last.Type != protocol.TypeResult {
		t.Fatalf("first run ended with %+v", last.Payload)
	}
	for try := 0; ; try++ {
		c.send(protocol.TypeRun, "again", run)
		c.ws.SetReadDeadline(time.Now().Add(15 * time.Second))
		_, b, err := c.ws.ReadMessage()
		if err != nil {
			t.Fatalf("no answer to the same run sent again (deadlock?): %v", err)
		}
		m, err := protocol.Decode(b)
		must(t, err)
		if e, ok := m.Payload.(*protocol.Error); ok && e.Code == protocol.CodeDuplicateID && try < 50 {
			time.Sleep(20 * time.Millisecond) // the first run is still being cleaned up
			continue
		}
		if res, ok := m.Payload.(*protocol.Result); !ok || !res.Cached {
			t.Fatalf("the same run again: %s %+v", m.Type, m.Payload)
		}
		return
	}
}
