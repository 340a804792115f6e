package main

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"reword/backend/cluster"
	"reword/shared/edit"
	"reword/shared/protocol"
)

var servingAll = regexp.MustCompile(`serving on (http://\S+) \(model .+, jobs through the embedded NATS\)`)

// startAll runs `reword serve` with the default role on data and waits
// until it is ready, returning the process and its base URL.
func startAll(t *testing.T, name, data, web string) (*process, string) {
	t.Helper()
	p := startReword(t, name, "serve", "--data", data, "--web", web, "--addr", "127.0.0.1:0", "--threads", "1")
	if !p.stdout.Scan() {
		t.Fatalf("%s printed no address: %v\n%s", name, p.stdout.Err(), p.stderr.String())
	}
	m := servingAll.FindStringSubmatch(p.stdout.Text())
	if m == nil {
		t.Fatalf("%s's first line: %q", name, p.stdout.Text())
	}
	go func() { // drain the rest, so the pipe never fills up
		for p.stdout.Scan() {
		}
	}()
	resp, err := http.Get(m[1] + "/readyz")
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: /readyz = %d once serving", name, resp.StatusCode)
	}
	return p, m[1]
}

// wsClient is a test client of /ws.
type wsClient struct {
	t  *testing.T
	ws *websocket.Conn
}

func dialWS(t *testing.T, base string) *wsClient {
	t.Helper()
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/ws", nil)
	must(t, err)
	t.Cleanup(func() { ws.Close() })
	c := &wsClient{t: t, ws: ws}
	if h, ok := c.next().Payload.(*protocol.Hello); !ok || !h.Model.Ready {
		t.Fatalf("hello: %+v", h)
	}
	return c
}

func (c *wsClient) run(id string, seed uint64, steps int) {
	c.t.Helper()
	b, err := protocol.Encode(protocol.TypeRun, id, protocol.Run{Spec: edit.Spec{
		Source: "a red circle", Targets: []string{"a blue circle"}, Seed: &seed, Steps: &steps,
	}})
	must(c.t, err)
	must(c.t, c.ws.WriteMessage(websocket.TextMessage, b))
}

// next returns the next JSON message, skipping preview frames.
func (c *wsClient) next() *protocol.Message {
	c.t.Helper()
	for {
		c.ws.SetReadDeadline(time.Now().Add(60 * time.Second))
		typ, b, err := c.ws.ReadMessage()
		must(c.t, err)
		if typ == websocket.BinaryMessage {
			_, err := protocol.DecodePreview(b)
			must(c.t, err)
			continue
		}
		msg, err := protocol.Decode(b)
		must(c.t, err)
		return msg
	}
}

// TestServeAllThroughEmbeddedNATS runs `reword serve` as it ships (role
// all) as a child process: an edit over /ws runs through the embedded
// NATS (its job stream is on disk under <data>/nats, nothing listens but
// HTTP); a second process on the same data folder is refused; a job left
// waiting at SIGTERM gets the shutdown error, stays in the stream and runs
// on the next start, whose answer to the same request is the stored
// result.
func TestServeAllThroughEmbeddedNATS(t *testing.T) {
	data, web := t.TempDir(), t.TempDir()
	must(t, os.WriteFile(filepath.Join(web, "app.wasm"), []byte("\x00asm\x01\x00\x00\x00"), 0o644))
	p1, base := startAll(t, "all-1", data, web)

	c := dialWS(t, base)
	c.run("first", 4, 3)
	started, previewsOrProgress := false, 0
	var res *protocol.Result
	for res == nil {
		msg := c.next()
		switch msg.Type {
		case protocol.TypeStarted:
			started = true
		case protocol.TypeProgress:
			previewsOrProgress++
		case protocol.TypeResult:
			res = msg.Payload.(*protocol.Result)
		case protocol.TypeError:
			t.Fatalf("the edit failed: %+v", msg.Payload)
		}
	}
	if !started || previewsOrProgress == 0 || len(res.Images) != 2 || res.Cached {
		t.Fatalf("started %v, %d progress, result %+v", started, previewsOrProgress, res)
	}
	checkPNG(t, "the edited image", base+res.Images[1].URL)
	if _, err := os.Stat(filepath.Join(data, "nats", "jetstream", "$G", "streams", cluster.StreamName)); err != nil {
		t.Errorf("no job stream under the data folder: %v", err)
	}

	// A second process on the same data folder would share the NATS
	// files: it is refused, and says why.
	p2 := startReword(t, "all-2", "serve", "--data", data, "--web", web, "--addr", "127.0.0.1:0")
	select {
	case <-p2.done:
	case <-time.After(30 * time.Second):
		t.Fatal("a second process on the same data folder kept running")
	}
	if p2.err == nil || !strings.Contains(p2.stderr.String(), "another process runs an embedded NATS") {
		t.Errorf("second process: %v, stderr %q", p2.err, p2.stderr.String())
	}

	// A long edit runs; a second one waits in the stream behind it.
	c.run("long", 5, 50)
	c.run("waiting", 6, 3)
	for got := map[string]bool{}; !got["long started"] || !got["waiting queued"]; {
		msg := c.next()
		if msg.Type == protocol.TypeError || msg.Type == protocol.TypeResult {
			t.Fatalf("before the shutdown: %s %s %+v", msg.ID, msg.Type, msg.Payload)
		}
		got[msg.ID+" "+string(msg.Type)] = true
	}
	time.Sleep(300 * time.Millisecond) // the waiting job's publish is over
	p1.stop(t)
	// The running edit finished within the grace period; the waiting one
	// was told to send again.
	ended := map[string]protocol.Type{}
	for len(ended) < 2 {
		msg := c.next()
		switch msg.Type {
		case protocol.TypeResult:
			ended[msg.ID] = msg.Type
		case protocol.TypeError:
			if e := msg.Payload.(*protocol.Error); e.Code != protocol.CodeShutdown || msg.ID != "waiting" {
				t.Fatalf("at shutdown: %s %+v", msg.ID, e)
			}
			ended[msg.ID] = msg.Type
		}
	}
	if ended["long"] != protocol.TypeResult || ended["waiting"] != protocol.TypeError {
		t.Errorf("at shutdown: %v; want long's result and waiting's shutdown error", ended)
	}

	// The next start runs the job left in the stream by itself.
	p3, base := startAll(t, "all-3", data, web)
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(p3.stderr.String(), "job done") {
		if time.Now().After(deadline) {
			t.Fatalf("the job left in the stream did not run on the next start:\n%s", p3.stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	c = dialWS(t, base)
	c.run("waiting", 6, 3)
	msg := c.next()
	if r, ok := msg.Payload.(*protocol.Result); !ok || !r.Cached || len(r.Images) != 2 {
		t.Fatalf("the same request after the restart: %s %+v, want its stored result", msg.Type, msg.Payload)
	}
	c.ws.Close()
	p3.stop(t)
}
