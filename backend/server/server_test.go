package server

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"reword/shared/protocol"
)

// newTestServer serves a fake-free setup: a real (if tiny) app.wasm file with
// real compressed copies, an empty model folder, on a loopback listener.
func newTestServer(t *testing.T, origins ...string) (*httptest.Server, []byte) {
	t.Helper()
	wasmDir := t.TempDir()
	wasm := bytes.Repeat([]byte("\x00asm\x01\x00\x00\x00"), 4096)
	must(t, os.WriteFile(filepath.Join(wasmDir, "app.wasm"), wasm, 0o644))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(wasm)
	zw.Close()
	must(t, os.WriteFile(filepath.Join(wasmDir, "app.wasm.gz"), gz.Bytes(), 0o644))
	s, err := New(Config{
		Version:        "test-1",
		ModelDir:       t.TempDir(),
		WasmDir:        wasmDir,
		AllowedOrigins: origins,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	must(t, err)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts, wasm
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func dial(t *testing.T, ts *httptest.Server, origin string) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	c, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(ts.URL, "http")+"/ws", h)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, resp, err
}

func readMessage(t *testing.T, c *websocket.Conn) *protocol.Message {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, b, err := c.ReadMessage()
	must(t, err)
	m, err := protocol.Decode(b)
	must(t, err)
	return m
}

func TestHelloOnConnect(t *testing.T) {
	ts, _ := newTestServer(t)
	c, _, err := dial(t, ts, ts.URL)
	must(t, err)
	m := readMessage(t, c)
	h, ok := m.Payload.(*protocol.Hello)
	if !ok {
		t.Fatalf("first message is %s, want hello", m.Type)
	}
	if h.Server != "test-1" || h.Protocol != protocol.Version || h.Model.Ready || len(h.Model.Missing) == 0 || !strings.Contains(h.Model.Problem, "unet/model.onnx") {
		t.Errorf("hello = %+v", h)
	}
}

func TestOriginCheck(t *testing.T) {
	ts, _ := newTestServer(t, "https://front.example")
	if _, _, err := dial(t, ts, "https://evil.example"); err == nil {
		t.Error("foreign origin was accepted")
	}
	if _, _, err := dial(t, ts, "https://front.example"); err != nil {
		t.Errorf("allow-listed origin refused: %v", err)
	}
	if _, _, err := dial(t, ts, ""); err != nil {
		t.Errorf("client without Origin (CLI) refused: %v", err)
	}
	if _, err := New(Config{Version: "x", ModelDir: t.TempDir(), WasmDir: t.TempDir(), AllowedOrigins: []string{"front.example"}}); err == nil {
		t.Error("malformed allowed origin accepted")
	}
}

func TestBadMessagesGetErrorsAndConnectionSurvives(t *testing.T) {
	ts, _ := newTestServer(t)
	c, _, err := dial(t, ts, "")
	must(t, err)
	readMessage(t, c) // hello
	for _, tc := range []struct {
		msg  string
		code protocol.ErrorCode
	}{
		{`not json`, protocol.CodeBadMessage},
		{`{"v":1,"type":"teleport","data":{}}`, protocol.CodeUnknownType},
		{`{"v":9,"type":"hello","data":{}}`, protocol.CodeBadVersion},
		{`{"v":1,"type":"hello","id":"q","data":{"server":"x","protocol":1,"model":{"id":"m","ready":true}}}`, protocol.CodeUnknownType},
	} {
		must(t, c.WriteMessage(websocket.TextMessage, []byte(tc.msg)))
		m := readMessage(t, c)
		e, ok := m.Payload.(*protocol.Error)
		if !ok || e.Code != tc.code {
			t.Errorf("%s: got %s %+v, want error %s", tc.msg, m.Type, m.Payload, tc.code)
		}
	}
}

func TestOversizedMessageClosesWithReason(t *testing.T) {
	ts, _ := newTestServer(t)
	c, _, err := dial(t, ts, "")
	must(t, err)
	readMessage(t, c)
	must(t, c.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte("x"), protocol.MaxMessageBytes+1)))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err = c.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Errorf("err = %v, want close 1009", err)
	}
	// The server itself is fine.
	c2, _, err := dial(t, ts, "")
	must(t, err)
	readMessage(t, c2)
}

func TestWasmServedPrecompressed(t *testing.T) {
	ts, wasm := newTestServer(t)
	for _, tc := range []struct{ accept, enc string }{{"gzip, deflate, br", "gzip"}, {"identity", ""}, {"gzip;q=0", ""}} {
		req, _ := http.NewRequest("GET", ts.URL+"/web/app.wasm", nil)
		req.Header.Set("Accept-Encoding", tc.accept)
		resp, err := http.DefaultTransport.RoundTrip(req) // no transparent decompression
		must(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/wasm" || resp.Header.Get("Content-Encoding") != tc.enc {
			t.Errorf("Accept-Encoding %q: status %d type %q encoding %q", tc.accept, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Content-Encoding"))
			continue
		}
		if tc.enc == "gzip" {
			zr, err := gzip.NewReader(bytes.NewReader(body))
			must(t, err)
			body, _ = io.ReadAll(zr)
		}
		if !bytes.Equal(body, wasm) {
			t.Errorf("Accept-Encoding %q: body differs from app.wasm", tc.accept)
		}
	}
}

func TestPagesStaticAndHealth(t *testing.T) {
	ts, _ := newTestServer(t)
	get := func(path string) (*http.Response, string) {
		resp, err := http.Get(ts.URL + path)
		must(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	resp, body := get("/")
	if resp.StatusCode != 200 || !strings.Contains(body, `id="app"`) || !strings.Contains(body, "/web/icon-192.png") || strings.Contains(body, "githubusercontent") {
		t.Errorf("page: status %d, body lacks the prerendered editor or uses remote icons", resp.StatusCode)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("security headers missing")
	}
	resp, body = get("/web/app.css")
	if resp.StatusCode != 200 || !strings.Contains(body, ".topbar") {
		t.Errorf("static css: %d", resp.StatusCode)
	}
	resp, _ = get("/web/../server.go")
	if resp.StatusCode == 200 {
		t.Error("path traversal served a file")
	}
	resp, body = get("/healthz")
	var h struct {
		Status, Version string
		Model           protocol.ModelInfo
	}
	must(t, json.Unmarshal([]byte(body), &h))
	if resp.StatusCode != 200 || h.Status != "ok" || h.Version != "test-1" || h.Model.Ready {
		t.Errorf("healthz = %d %+v", resp.StatusCode, h)
	}
}

func TestNewReportsMissingFrontEnd(t *testing.T) {
	_, err := New(Config{Version: "x", ModelDir: t.TempDir(), WasmDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "make build") {
		t.Errorf("err = %v, want advice to run make build", err)
	}
}
