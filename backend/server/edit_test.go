package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"reword/backend/queue"
	"reword/models/tiny/tinytest"
	"reword/shared/edit"
	"reword/shared/protocol"
)

func contextWithTimeout(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
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
	ts := newTestServer(t, tinytest.Dir(t), nil)
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
	ts := newTestServer(t, tinytest.Dir(t), nil)
	c := ts.connect(t)
	s := spec(1, 500)
	g := 99.0
	s.Guidance = &g
	c.send(protocol.TypeRun, "bad", protocol.Run{Spec: s})
	e, ok := c.next().msg.Payload.(*protocol.Error)
	if !ok || e.Code != protocol.CodeInvalidSpec || len(e.Problems) < 2 {
		t.Fatalf("error = %+v", e)
	}
	fields := map[string]bool{}
	for _, p := range e.Problems {
		fields[p.Field] = true
	}
	if !fields["spec.steps"] || !fields["spec.guidance"] {
		t.Errorf("problems %+v do not name spec.steps and spec.guidance", e.Problems)
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
	ts := newTestServer(t, tinytest.Dir(t), nil)
	c := ts.connect(t)
	c.send(protocol.TypeRun, "long", protocol.Run{Spec: spec(5, 150)})
	c.until(protocol.TypeProgress)
	c.send(protocol.TypeCancel, "long", protocol.Cancel{})
	_, last := c.until(protocol.TypeError, protocol.TypeResult)
	if e, ok := last.Payload.(*protocol.Error); !ok || e.Code != protocol.CodeCancelled {
		t.Fatalf("after cancel: %s %+v", last.Type, last.Payload)
	}
	c.send(protocol.TypeRun, "next", protocol.Run{Spec: spec(6, 2)})
	if _, last = c.until(protocol.TypeResult, protocol.TypeError); last.Type != protocol.TypeResult {
		t.Errorf("the run after a cancel: %+v", last.Payload)
	}
}

func TestDisconnectMidRunFreesTheWorker(t *testing.T) {
	ts := newTestServer(t, tinytest.Dir(t), nil)
	c := ts.connect(t)
	c.send(protocol.TypeRun, "long", protocol.Run{Spec: spec(7, 150)})
	c.until(protocol.TypeProgress)
	c.ws.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if w, r := ts.srv.queue.Len(); w == 0 && r == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the worker was still busy 30 s after its client left")
		}
		time.Sleep(20 * time.Millisecond)
	}
	c2 := ts.connect(t)
	c2.send(protocol.TypeRun, "after", protocol.Run{Spec: spec(8, 2)})
	if _, last := c2.until(protocol.TypeResult, protocol.TypeError); last.Type != protocol.TypeResult {
		t.Errorf("the run after a disconnect: %+v", last.Payload)
	}
}

func TestQueueFullAnswersBusy(t *testing.T) {
	ts := newTestServer(t, tinytest.Dir(t), func(c *Config) { c.Queue = queue.Config{Workers: 1, MaxQueued: 1} })
	a, b, d := ts.connect(t), ts.connect(t), ts.connect(t)
	a.send(protocol.TypeRun, "a", protocol.Run{Spec: spec(1, 150)})
	a.until(protocol.TypeStarted)
	b.send(protocol.TypeRun, "b", protocol.Run{Spec: spec(2, 2)})
	if _, last := b.until(protocol.TypeQueued); last.Payload.(*protocol.Queued).Position != 0 {
		t.Errorf("queued = %+v", last.Payload)
	}
	d.send(protocol.TypeRun, "d", protocol.Run{Spec: spec(3, 2)})
	if _, last := d.until(protocol.TypeError); last.Payload.(*protocol.Error).Code != protocol.CodeBusy {
		t.Errorf("third client: %+v", last.Payload)
	}
	a.send(protocol.TypeCancel, "a", protocol.Cancel{})
	if _, last := b.until(protocol.TypeResult, protocol.TypeError); last.Type != protocol.TypeResult {
		t.Errorf("queued job after the first was cancelled: %+v", last.Payload)
	}
}

// TestManyClientsAllComplete is the load test: 50 clients at once, each
// running a short edit; every one gets its own result, nothing is lost.
// It is bounded by the clients' read deadlines, not timed.
func TestManyClientsAllComplete(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	ts := newTestServer(t, tinytest.Dir(t), func(c *Config) { c.Queue = queue.Config{Workers: 2, MaxQueued: 100} })
	const clients = 50
	var wg sync.WaitGroup
	results := make(chan string, clients)
	for i := range clients {
		c := ts.connect(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("c%d", i)
			b, _ := protocol.Encode(protocol.TypeRun, id, protocol.Run{Spec: spec(uint64(100+i), 2)})
			if err := c.ws.WriteMessage(1, b); err != nil {
				t.Error(err)
				return
			}
			for {
				c.ws.SetReadDeadline(time.Now().Add(3 * time.Minute))
				typ, data, err := c.ws.ReadMessage()
				if err != nil {
					t.Errorf("client %s: %v", id, err)
					return
				}
				if typ != 1 {
					continue
				}
				m, err := protocol.Decode(data)
				if err != nil {
					t.Errorf("client %s: %v", id, err)
					return
				}
				switch p := m.Payload.(type) {
				case *protocol.Result:
					if m.ID == id && len(p.Images) == 2 {
						results <- id
					}
					return
				case *protocol.Error:
					t.Errorf("client %s: %+v", id, p)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(results)
	seen := map[string]bool{}
	for id := range results {
		seen[id] = true
	}
	if len(seen) != clients {
		t.Errorf("%d of %d clients got their result", len(seen), clients)
	}
}

func TestShutdownClosesSocketsWithReason(t *testing.T) {
	ts := newTestServer(t, tinytest.Dir(t), nil)
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
	ts := newTestServer(t, tinytest.Dir(t), nil)
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
	ts := newTestServer(t, tinytest.Dir(t), func(c *Config) { c.Queue = queue.Config{Workers: 1} })
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
