package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"reword/backend/cluster"
	"reword/backend/diffusion"
	"reword/backend/diffusion/pngtext"
	"reword/backend/store"
	"reword/models/tiny/tinytest"
	"reword/shared/align"
	"reword/shared/edit"
	"reword/shared/protocol"
)

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// editEnv is a server as reword serve runs it in role all: a gateway and
// one worker on the real tiny model (cluster.Local) over an embedded,
// in-process NATS JetStream node, sharing one store with the server.
type editEnv struct {
	*testServer
	local *cluster.Local
	node  *cluster.Node
}

// newEditServer starts the deployment with settings and a server on it.
// engine, when set, wraps the worker's engine (to make a job panic).
func newEditServer(t *testing.T, settings cluster.Settings, engine func(*diffusion.Engine) cluster.Engine) *editEnv {
	t.Helper()
	return newEditServerWith(t, settings, engine, 0, nil)
}

// newEditServerWith is newEditServer with a cap on the shared store
// (0: none) and the server's configuration tweaked.
func newEditServerWith(t *testing.T, settings cluster.Settings, engine func(*diffusion.Engine) cluster.Engine, storeBytes int64, tweak func(*Config)) *editEnv {
	t.Helper()
	node, err := cluster.StartNode(cluster.NodeConfig{StoreDir: t.TempDir(), InProcess: true})
	must(t, err)
	t.Cleanup(node.Shutdown)
	eng, err := diffusion.Load(tinytest.Dir(t), diffusion.Options{Threads: 1, Instrument: true})
	must(t, err)
	t.Cleanup(func() { eng.Close() })
	st, err := store.Open(context.Background(), t.TempDir(), storeBytes)
	must(t, err)
	t.Cleanup(func() { st.Close() })
	var runner cluster.Engine = eng
	if engine != nil {
		runner = engine(eng)
	}
	local, err := cluster.StartLocal(context.Background(), cluster.LocalConfig{Node: node, Engine: runner, Store: st, Settings: settings, Logger: quiet})
	must(t, err)
	// Registered before the server's cleanup, so it runs after it, as
	// reword serve closes the deployment after the server.
	t.Cleanup(func() {
		ctx, cancel := contextWithTimeout(time.Second)
		defer cancel()
		local.Close(ctx)
	})
	ts := newTestServer(t, local.Gateway, func(c *Config) {
		c.OpenStore = st
		if tweak != nil {
			tweak(c)
		}
	})
	return &editEnv{testServer: ts, local: local, node: node}
}

// idle waits until the worker runs no job.
func (env *editEnv) idle(t *testing.T, what string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(env.local.Worker.Running()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the worker was still busy 30 s after %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func spec(seed uint64, steps int) edit.Spec {
	return edit.Spec{Source: "a red circle", Targets: []string{"a blue circle"}, Seed: &seed, Steps: &steps}
}

// TestEditStreamsPreviewsThenResult runs a real edit on the tiny model and
// checks the whole conversation: started, progress and previews in step
// order per row, then a result whose images the server serves, whose spec
// echoes the reweight, and whose link decodes to that spec. The same spec
// again comes from the result store.
func TestEditStreamsPreviewsThenResult(t *testing.T) {
	ts := newEditServer(t, cluster.Settings{}, nil)
	c, err := ts.dial(t, "")
	must(t, err)
	hello := c.next().msg.Payload.(*protocol.Hello)
	if d := hello.Model.Defaults; !hello.Model.Ready || d == nil || d.Steps < 1 || len(d.Sizes) == 0 || len(d.Schedulers) == 0 {
		t.Fatalf("hello of a ready model: %+v", hello.Model)
	}
	s := spec(3, 6)
	s.Reweights = map[string]float64{"blue": 1.5}
	c.send(protocol.TypeRun, "edit-1", protocol.Run{Spec: s, HeatMaps: true})
	events, last := c.until(protocol.TypeResult, protocol.TypeError)
	if last.Type != protocol.TypeResult {
		t.Fatalf("run ended with %+v", last.Payload)
	}
	var started *protocol.Started
	lastStep := map[int]int{}
	previews, progress := 0, 0
	for _, e := range events {
		switch {
		case e.preview != nil:
			p := e.preview
			if started == nil {
				t.Fatal("a preview arrived before started")
			}
			if p.ID != "edit-1" || p.Width != 16 && p.Width != 64 || len(p.Pixels) != 4*p.Width*p.Height {
				t.Errorf("preview %+v", p)
			}
			if p.Step < lastStep[p.Row] {
				t.Errorf("row %d went back from step %d to %d", p.Row, lastStep[p.Row], p.Step)
			}
			lastStep[p.Row] = p.Step
			previews++
		case e.msg.Type == protocol.TypeStarted:
			started = e.msg.Payload.(*protocol.Started)
		case e.msg.Type == protocol.TypeProgress:
			progress++
		}
	}
	if started == nil || len(started.Rows) != 2 || started.Steps != 6 || started.Rows[1].Prompt != "a blue circle" {
		t.Fatalf("started = %+v", started)
	}
	if previews == 0 || progress == 0 || len(lastStep) != 2 {
		t.Errorf("%d previews over rows %v, %d progress messages", previews, lastStep, progress)
	}
	res := last.Payload.(*protocol.Result)
	if len(res.Images) != 2 || res.Spec.Reweights["blue"] != 1.5 || *res.Spec.Steps != 6 || res.Cached || len(res.HeatMaps) == 0 {
		t.Fatalf("result = %+v", res)
	}
	decoded, err := edit.DecodeLink(res.Link)
	must(t, err)
	if decoded.Reweights["blue"] != 1.5 || *decoded.Seed != 3 {
		t.Errorf("link decodes to %+v", decoded)
	}
	for _, im := range res.Images {
		resp, err := http.Get(ts.URL + im.URL)
		must(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/png" || len(b) < 100 {
			t.Errorf("image %s: %d, %d bytes", im.URL, resp.StatusCode, len(b))
		}
		// Each image carries the spec it ran and the meaning it ran under.
		text, ok, err := pngtext.Read(bytes.NewReader(b), pngtext.SpecKey)
		if err != nil || !ok || !strings.Contains(text, `"reweights":{"blue":1.5}`) {
			t.Errorf("image %s: spec %q, %v, %v", im.URL, text, ok, err)
		}
		if m, ok, err := pngtext.Read(bytes.NewReader(b), pngtext.MeaningKey); err != nil || !ok || m != fmt.Sprint(edit.MeaningVersion) {
			t.Errorf("image %s: meaning %q, %v, %v; want %d", im.URL, m, ok, err, edit.MeaningVersion)
		}
	}

	// The same spec (defaults omitted, so only equal after resolution)
	// comes from the store, with the same images.
	c.send(protocol.TypeRun, "edit-2", protocol.Run{Spec: s})
	_, last = c.until(protocol.TypeResult, protocol.TypeError)
	again, ok := last.Payload.(*protocol.Result)
	if !ok || !again.Cached || again.Images[1].Hash != res.Images[1].Hash {
		t.Errorf("second run: %+v", last.Payload)
	}
}

func TestInvalidSpecListsEveryProblem(t *testing.T) {
	ts := newEditServer(t, cluster.Settings{}, nil)
	c := ts.connect(t)
	s := spec(1, 500)
	g := 99.0
	s.Guidance = &g
	// The server checks a chosen kind against the prompts again: a replace
	// needs as many words as the source.
	s.Targets = []string{"a big blue circle"}
	s.Kinds = []align.Choice{align.ForceReplace}
	// and the self-replace limit, which a client may send out of range.
	zero := 0
	s.SelfMaxTokens = &zero
	s.ReplaceTail = "sideways"
	c.send(protocol.TypeRun, "bad", protocol.Run{Spec: s})
	e, ok := c.next().msg.Payload.(*protocol.Error)
	if !ok || e.Code != protocol.CodeInvalidSpec || len(e.Problems) < 2 {
		t.Fatalf("error = %+v", e)
	}
	fields := map[string]bool{}
	for _, p := range e.Problems {
		fields[p.Field] = true
	}
	if !fields["spec.steps"] || !fields["spec.guidance"] || !fields["spec.kinds[0]"] || !fields["spec.self_max_tokens"] || !fields["spec.replace_tail"] {
		t.Errorf("problems %+v do not name spec.steps, spec.guidance, spec.kinds[0], spec.self_max_tokens and spec.replace_tail", e.Problems)
	}
	// A photo that was never uploaded is reported as expired.
	s = spec(1, 2)
	s.Image = fmt.Sprintf("%064x", 1)
	c.send(protocol.TypeRun, "photo", protocol.Run{Spec: s})
	if e := c.next().msg.Payload.(*protocol.Error); e.Code != protocol.CodeNotFound || e.Field != "spec.image" {
		t.Errorf("missing photo: %+v", e)
	}
}

func TestCancelMidRunFreesTheWorker(t *testing.T) {
	ts := newEditServer(t, cluster.Settings{}, nil)
	c := ts.connect(t)
	c.send(protocol.TypeRun, "long", protocol.Run{Spec: spec(5, 150)})
	c.until(protocol.TypeProgress)
	c.send(protocol.TypeCancel, "long", protocol.Cancel{})
	_, last := c.until(protocol.TypeError, protocol.TypeResult)
	if e, ok := last.Payload.(*protocol.Error); !ok || e.Code != protocol.CodeCancelled {
		t.Fatalf("after cancel: %s %+v", last.Type, last.Payload)
	}
	ts.idle(t, "the cancel")
	if st := ts.local.Worker.Stats(); st.Cancelled != 1 {
		t.Errorf("worker stats after the cancel: %+v", st)
	}
	c.send(protocol.TypeRun, "next", protocol.Run{Spec: spec(6, 2)})
	if _, last = c.until(protocol.TypeResult, protocol.TypeError); last.Type != protocol.TypeResult {
		t.Errorf("the run after a cancel: %+v", last.Payload)
	}
}

func TestDisconnectMidRunFreesTheWorker(t *testing.T) {
	ts := newEditServer(t, cluster.Settings{}, nil)
	c := ts.connect(t)
	c.send(protocol.TypeRun, "long", protocol.Run{Spec: spec(7, 150)})
	c.until(protocol.TypeProgress)
	c.ws.Close()
	ts.idle(t, "its client left")
	if st := ts.local.Worker.Stats(); st.Cancelled != 1 {
		t.Errorf("worker stats after the disconnect: %+v", st)
	}
	c2 := ts.connect(t)
	c2.send(protocol.TypeRun, "after", protocol.Run{Spec: spec(8, 2)})
	if _, last := c2.until(protocol.TypeResult, protocol.TypeError); last.Type != protocol.TypeResult {
		t.Errorf("the run after a disconnect: %+v", last.Payload)
	}
}

// TestQueueFullAnswersBusy fills a queue of two: one job runs, one waits
// in the job stream, two wait in the gateway's admission queue (behind the
// one in the stream); a fifth client is told the queue is busy. Each
// waiting client is told its place.
func TestQueueFullAnswersBusy(t *testing.T) {
	ts := newEditServer(t, cluster.Settings{MaxQueued: 2}, nil)
	a := ts.connect(t)
	a.send(protocol.TypeRun, "a", protocol.Run{Spec: spec(1, 150)})
	a.until(protocol.TypeStarted)
	var waiting []*client
	for i, want := range []int{0, 1, 2} {
		c := ts.connectFrom(t, fmt.Sprintf("127.0.2.%d", i+1)) // each its own client
		c.send(protocol.TypeRun, fmt.Sprint("w", i), protocol.Run{Spec: spec(uint64(2+i), 2)})
		for {
			_, last := c.until(protocol.TypeQueued, protocol.TypeError)
			if e, ok := last.Payload.(*protocol.Error); ok {
				t.Fatalf("waiting client %d: %+v", i, e)
			}
			if last.Payload.(*protocol.Queued).Position == want {
				break
			}
		}
		waiting = append(waiting, c)
	}
	full := ts.connectFrom(t, "127.0.2.9")
	full.send(protocol.TypeRun, "full", protocol.Run{Spec: spec(9, 2)})
	if _, last := full.until(protocol.TypeError); last.Payload.(*protocol.Error).Code != protocol.CodeBusy {
		t.Errorf("the client past the bound: %+v", last.Payload)
	}
	a.send(protocol.TypeCancel, "a", protocol.Cancel{})
	for i, c := range waiting {
		if _, last := c.until(protocol.TypeResult, protocol.TypeError); last.Type != protocol.TypeResult {
			t.Errorf("waiting job %d after the first was cancelled: %+v", i, last.Payload)
		}
	}
}

// panicky is the tiny model's engine with one fault: an edit of the
// source prompt "panic" panics, as a bug in the engine would.
type panicky struct{ *diffusion.Engine }

func (p panicky) Edit(ctx context.Context, s edit.Spec, opts diffusion.RunOptions, onPreview func(diffusion.Preview)) (*diffusion.Result, error) {
	if s.Source == "panic" {
		panic("the engine exploded")
	}
	return p.Engine.Edit(ctx, s, opts, onPreview)
}

// TestPanickingJobFailsAlone: an edit that panics on the worker ends with
// an internal error, and the worker (in role all, the whole server) goes
// on to the next edit.
func TestPanickingJobFailsAlone(t *testing.T) {
	ts := newEditServer(t, cluster.Settings{}, func(e *diffusion.Engine) cluster.Engine { return panicky{e} })
	c := ts.connect(t)
	bad := spec(1, 2)
	bad.Source, bad.Targets = "panic", []string{"panic now"}
	c.send(protocol.TypeRun, "bad", protocol.Run{Spec: bad})
	_, last := c.until(protocol.TypeResult, protocol.TypeError)
	if e, ok := last.Payload.(*protocol.Error); !ok || e.Code != protocol.CodeInternal || !strings.Contains(e.Message, "panicked") {
		t.Fatalf("the panicking edit ended with %s %+v", last.Type, last.Payload)
	}
	c.send(protocol.TypeRun, "good", protocol.Run{Spec: spec(2, 2)})
	if _, last := c.until(protocol.TypeResult, protocol.TypeError); last.Type != protocol.TypeResult {
		t.Errorf("the edit after a panic: %+v", last.Payload)
	}
	if st := ts.local.Worker.Stats(); st.Failed != 1 || st.Completed != 1 || st.Redelivered != 0 {
		t.Errorf("worker stats: %+v; want one failed, one completed, nothing redelivered", st)
	}
}

func TestShutdownClosesSocketsWithReason(t *testing.T) {
	ts := newEditServer(t, cluster.Settings{}, nil)
	c := ts.connect(t)
	c.send(protocol.TypeRun, "long", protocol.Run{Spec: spec(9, 150)})
	c.until(protocol.TypeProgress)
	ctx, cancel := contextWithTimeout(50 * time.Millisecond)
	defer cancel()
	must(t, ts.srv.Shutdown(ctx))
	var closeErr error
	for closeErr == nil {
		c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _, closeErr = c.ws.ReadMessage()
	}
	if ce, ok := closeErr.(interface{ Error() string }); !ok || !strings.Contains(ce.Error(), "1001") {
		t.Errorf("socket ended with %v, want close 1001 (going away)", closeErr)
	}
	resp, err := http.Get(ts.URL + "/readyz")
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("readyz while shutting down = %d", resp.StatusCode)
	}
}

// TestPhotoEdit uploads a photo, then edits it: row 0 is the reconstruction
// through the inversion, row 1 the edit; the result store keys it by the
// photo too.
func TestPhotoEdit(t *testing.T) {
	ts := newEditServer(t, cluster.Settings{}, nil)
	resp, err := http.Post(ts.URL+"/api/images", "image/png", bytes.NewReader(pngBytes(t, 80, 64)))
	must(t, err)
	var up struct{ Hash string }
	json.NewDecoder(resp.Body).Decode(&up)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload: %d", resp.StatusCode)
	}
	c := ts.connect(t)
	s := spec(1, 4)
	s.Image = up.Hash
	c.send(protocol.TypeRun, "photo", protocol.Run{Spec: s})
	_, last := c.until(protocol.TypeResult, protocol.TypeError)
	res, ok := last.Payload.(*protocol.Result)
	if !ok {
		t.Fatalf("photo edit: %+v", last.Payload)
	}
	if len(res.Images) != 2 || res.Spec.Image != up.Hash || res.Spec.Inversion != "direct" {
		t.Errorf("result = %+v", res)
	}
}

// TestShutdownReportsBeforeClosing checks that a request still waiting when
// the server stops hears why (a shutdown error) before its socket closes.
func TestShutdownReportsBeforeClosing(t *testing.T) {
	ts := newEditServer(t, cluster.Settings{}, nil)
	a, b := ts.connect(t), ts.connect(t)
	a.send(protocol.TypeRun, "long", protocol.Run{Spec: spec(11, 150)})
	a.until(protocol.TypeStarted)
	b.send(protocol.TypeRun, "waiting", protocol.Run{Spec: spec(12, 2)})
	b.until(protocol.TypeQueued)
	ctx, cancel := contextWithTimeout(2 * time.Second)
	defer cancel()
	must(t, ts.srv.Shutdown(ctx))
	_, last := b.until(protocol.TypeError)
	if e := last.Payload.(*protocol.Error); e.Code != protocol.CodeShutdown || last.ID != "waiting" {
		t.Errorf("waiting request got %+v", e)
	}
	b.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, _, err := b.ws.ReadMessage(); !strings.Contains(fmt.Sprint(err), "1001") {
		t.Errorf("after the shutdown error: %v, want close 1001", err)
	}
}

// TestRunDuringShutdownIsRefused: once Shutdown began (here, waiting for
// a running edit), a new run is refused by the server itself with the
// shutdown error, and never reaches the executor: Shutdown waits for the
// runs it counted before, and none may join while it waits.
func TestRunDuringShutdownIsRefused(t *testing.T) {
	ts := newEditServer(t, cluster.Settings{}, nil)
	a, b := ts.connect(t), ts.connect(t)
	a.send(protocol.TypeRun, "long", protocol.Run{Spec: spec(13, 150)})
	a.until(protocol.TypeStarted)
	ctx, cancel := contextWithTimeout(3 * time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- ts.srv.Shutdown(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for ts.readyStatus(t) != http.StatusServiceUnavailable {
		if time.Now().After(deadline) {
			t.Fatal("the server did not start shutting down")
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.send(protocol.TypeRun, "late", protocol.Run{Spec: spec(14, 2)})
	_, last := b.until(protocol.TypeError)
	if e := last.Payload.(*protocol.Error); e.Code != protocol.CodeShutdown || last.ID != "late" || !strings.Contains(e.Message, "the server is shutting down") {
		t.Errorf("a run sent while the server shuts down got %+v (id %q)", e, last.ID)
	}
	must(t, <-done)
}

// TestProgressWithCachedSource: an edit whose source comes from the
// source cache, whose row is then not previewed (at the tiny model's
// default norm window, not after the window's steps), still reports
// progress up to its last step.
func TestProgressWithCachedSource(t *testing.T) {
	ts := newEditServer(t, cluster.Settings{}, nil)
	c := ts.connect(t)
	c.send(protocol.TypeRun, "first", protocol.Run{Spec: spec(21, 10)})
	c.until(protocol.TypeResult)
	again := spec(21, 10)
	again.Targets = []string{"a green circle"}
	c.send(protocol.TypeRun, "again", protocol.Run{Spec: again})
	events, last := c.until(protocol.TypeError, protocol.TypeResult)
	if last.Type != protocol.TypeResult {
		t.Fatalf("the second edit ended with %s", last.Type)
	}
	top := 0
	for _, e := range events {
		if e.msg != nil && e.msg.Type == protocol.TypeProgress {
			top = max(top, e.msg.Payload.(*protocol.Progress).Step)
		}
	}
	if top != 10 {
		t.Errorf("the edit of a cached source reported progress up to step %d of 10", top)
	}
}
