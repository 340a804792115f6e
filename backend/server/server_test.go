package server

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"reword/backend/model"
	"reword/shared/edit"
	"reword/shared/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type testServer struct {
	*httptest.Server
	srv  *Server
	wasm []byte
}

// newTestServer runs a real Server with exec on a loopback listener: real
// store in a temporary folder, a small real app.wasm with its gzip copy.
func newTestServer(t *testing.T, exec Executor, tweak func(*Config)) *testServer {
	t.Helper()
	wasmDir := t.TempDir()
	wasm := bytes.Repeat([]byte("\x00asm\x01\x00\x00\x00"), 4096)
	must(t, os.WriteFile(filepath.Join(wasmDir, "app.wasm"), wasm, 0o644))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(wasm)
	zw.Close()
	must(t, os.WriteFile(filepath.Join(wasmDir, "app.wasm.gz"), gz.Bytes(), 0o644))
	cfg := Config{
		Version:  "test-1",
		Executor: exec,
		WasmDir:  wasmDir,
		Store:    t.TempDir(),
		Logger:   quiet,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := New(cfg)
	must(t, err)
	// The HTTP server reword serve runs, with its timeouts.
	ts := httptest.NewUnstartedServer(s)
	ts.Config = s.HTTPServer()
	ts.Start()
	t.Cleanup(func() {
		ctx, cancel := contextWithTimeout(10 * time.Second)
		defer cancel()
		s.Shutdown(ctx)
		ts.Close()
	})
	return &testServer{Server: ts, srv: s, wasm: wasm}
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// withoutModel is the executor of a model folder with no files, as
// reword serve runs it when it has no model to load.
func withoutModel(t *testing.T) Executor {
	t.Helper()
	status, err := model.Check(t.TempDir())
	must(t, err)
	return NoModel(status, nil)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// client is a real WebSocket client of the test server.
type client struct {
	t  *testing.T
	ws *websocket.Conn
}

func (ts *testServer) dial(t *testing.T, origin string) (*client, error) {
	t.Helper()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	return ts.dialWith(t, "", h)
}

// dialWith opens a socket from the loopback address from (127.0.0.1 when
// empty; any 127.x.y.z is a distinct client of the server) with extra
// request headers. A refused upgrade's error carries the HTTP status and
// body.
func (ts *testServer) dialWith(t *testing.T, from string, h http.Header) (*client, error) {
	t.Helper()
	d := *websocket.DefaultDialer
	if from != "" {
		nd := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		d.NetDialContext = nd.DialContext
	}
	ws, resp, err := d.Dial("ws"+strings.TrimPrefix(ts.URL, "http")+"/ws", h)
	if err != nil {
		if resp != nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return nil, &refusal{status: resp.StatusCode, body: strings.TrimSpace(string(b))}
		}
		return nil, err
	}
	t.Cleanup(func() { ws.Close() })
	return &client{t: t, ws: ws}, nil
}

// refusal is a WebSocket upgrade the server answered with an HTTP error.
type refusal struct {
	status int
	body   string
}

func (r *refusal) Error() string { return fmt.Sprintf("HTTP %d: %s", r.status, r.body) }

func (ts *testServer) connect(t *testing.T) *client { return ts.connectFrom(t, "") }

// connectFrom opens a socket from the loopback address from and reads
// its hello.
func (ts *testServer) connectFrom(t *testing.T, from string) *client {
	t.Helper()
	c, err := ts.dialWith(t, from, nil)
	must(t, err)
	if m := c.next(); m.msg == nil || m.msg.Type != protocol.TypeHello {
		t.Fatalf("first message is not hello: %+v", m)
	}
	return c
}

// event is one message from the server: JSON or a preview frame.
type event struct {
	msg     *protocol.Message
	preview *protocol.Preview
}

func (c *client) next() event {
	c.t.Helper()
	c.ws.SetReadDeadline(time.Now().Add(60 * time.Second))
	typ, b, err := c.ws.ReadMessage()
	if err != nil {
		c.t.Fatalf("reading from the server: %v", err)
	}
	if typ == websocket.BinaryMessage {
		p, err := protocol.DecodePreview(b)
		must(c.t, err)
		return event{preview: &p}
	}
	m, err := protocol.DecodeServer(b)
	must(c.t, err)
	return event{msg: m}
}

func (c *client) send(typ protocol.Type, id string, payload any) {
	c.t.Helper()
	b, err := protocol.Encode(typ, id, payload)
	must(c.t, err)
	must(c.t, c.ws.WriteMessage(websocket.TextMessage, b))
}

// until reads events until one JSON message of a type in stop arrives,
// returning everything read.
func (c *client) until(stop ...protocol.Type) (events []event, last *protocol.Message) {
	c.t.Helper()
	for {
		e := c.next()
		events = append(events, e)
		if e.msg != nil {
			for _, s := range stop {
				if e.msg.Type == s {
					return events, e.msg
				}
			}
		}
	}
}

// --- front end, health, origin, protocol errors -------------------------

func TestHelloOnConnect(t *testing.T) {
	ts := newTestServer(t, withoutModel(t), nil)
	c, err := ts.dial(t, ts.URL)
	must(t, err)
	m := c.next().msg
	h, ok := m.Payload.(*protocol.Hello)
	if !ok {
		t.Fatalf("first message is %s, want hello", m.Type)
	}
	if h.Server != "test-1" || h.Protocol != protocol.Version || h.Meaning != edit.MeaningVersion || h.Model.Ready || len(h.Model.Missing) == 0 || !strings.Contains(h.Model.Problem, "unet/model.onnx") {
		t.Errorf("hello = %+v", h)
	}
	// A run on a server without a model is refused clearly.
	c.send(protocol.TypeRun, "r1", protocol.Run{Spec: spec(1, 2)})
	if e := c.next().msg.Payload.(*protocol.Error); e.Code != protocol.CodeNotReady {
		t.Errorf("run without a model: %+v", e)
	}
}

func TestOriginCheck(t *testing.T) {
	ts := newTestServer(t, withoutModel(t), func(c *Config) { c.AllowedOrigins = []string{"https://front.example"} })
	if _, err := ts.dial(t, "https://evil.example"); err == nil {
		t.Error("foreign origin was accepted")
	}
	if _, err := ts.dial(t, "https://front.example"); err != nil {
		t.Errorf("allow-listed origin refused: %v", err)
	}
	if _, err := ts.dial(t, ""); err != nil {
		t.Errorf("client without Origin (CLI) refused: %v", err)
	}
	// Uploads from the allow-listed front end pass CORS, others get no grant.
	for origin, want := range map[string]string{"https://front.example": "https://front.example", "https://evil.example": ""} {
		req, _ := http.NewRequest(http.MethodOptions, ts.URL+"/api/images", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		resp.Body.Close()
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != want {
			t.Errorf("preflight from %s: Access-Control-Allow-Origin %q, want %q", origin, got, want)
		}
	}
	if _, err := New(Config{Version: "x", Executor: withoutModel(t), WasmDir: t.TempDir(), Store: t.TempDir(), AllowedOrigins: []string{"front.example"}}); err == nil {
		t.Error("malformed allowed origin accepted")
	}
}

func TestBadMessagesGetErrorsAndConnectionSurvives(t *testing.T) {
	ts := newTestServer(t, withoutModel(t), nil)
	c := ts.connect(t)
	for _, tc := range []struct {
		msg  string
		code protocol.ErrorCode
	}{
		{`not json`, protocol.CodeBadMessage},
		{`{"v":1,"type":"teleport","data":{}}`, protocol.CodeUnknownType},
		{`{"v":9,"type":"run","data":{}}`, protocol.CodeBadVersion},
		{`{"v":1,"type":"run","id":"a","data":{"spec":{"source":"x","targets":["y"]},"colour":1}}`, protocol.CodeBadMessage},
		{`{"v":1,"type":"hello","id":"q","data":{"server":"x","protocol":1,"model":{"id":"m","ready":true}}}`, protocol.CodeUnknownType},
		{`{"v":1,"type":"cancel","id":"nothing","data":{}}`, protocol.CodeNotFound},
	} {
		must(t, c.ws.WriteMessage(websocket.TextMessage, []byte(tc.msg)))
		m := c.next().msg
		e, ok := m.Payload.(*protocol.Error)
		if !ok || e.Code != tc.code {
			t.Errorf("%s: got %s %+v, want error %s", tc.msg, m.Type, m.Payload, tc.code)
		}
	}
	must(t, c.ws.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}))
	if e := c.next().msg.Payload.(*protocol.Error); e.Code != protocol.CodeBadMessage {
		t.Errorf("binary message: %+v", e)
	}
}

func TestOversizedMessageClosesWithReason(t *testing.T) {
	ts := newTestServer(t, withoutModel(t), nil)
	c := ts.connect(t)
	must(t, c.ws.WriteMessage(websocket.TextMessage, bytes.Repeat([]byte("x"), protocol.MaxMessageBytes+1)))
	c.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, _, err := c.ws.ReadMessage()
	if !websocket.IsCloseError(err, websocket.CloseMessageTooBig) {
		t.Errorf("err = %v, want close 1009", err)
	}
	ts.connect(t) // the server itself is fine
}

func TestMessageRateLimit(t *testing.T) {
	ts := newTestServer(t, withoutModel(t), func(c *Config) { c.MessagesPerSecond = 1 })
	c := ts.connect(t)
	msg := []byte(`{"v":1,"type":"cancel","id":"x","data":{}}`)
	limited := false
	for range 6 {
		must(t, c.ws.WriteMessage(websocket.TextMessage, msg))
		if e := c.next().msg.Payload.(*protocol.Error); e.Code == protocol.CodeTooMany {
			limited = true
			break
		}
	}
	if !limited {
		t.Error("six messages at once from a 1/s client were never limited")
	}
}

func TestWasmServedPrecompressed(t *testing.T) {
	ts := newTestServer(t, withoutModel(t), nil)
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
		if !bytes.Equal(body, ts.wasm) {
			t.Errorf("Accept-Encoding %q: body differs from app.wasm", tc.accept)
		}
	}
}

func TestPagesStaticHealthAndMetrics(t *testing.T) {
	ts := newTestServer(t, withoutModel(t), nil)
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
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "'wasm-unsafe-eval'") {
		t.Error("security headers missing")
	}
	resp, body = get("/web/app.css")
	if resp.StatusCode != 200 || !strings.Contains(body, ".topbar") {
		t.Errorf("static css: %d", resp.StatusCode)
	}
	if resp, _ = get("/web/../server.go"); resp.StatusCode == 200 {
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
	if resp, _ = get("/readyz"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("readyz without a model = %d, want 503", resp.StatusCode)
	}
	if resp, body = get("/metrics"); resp.StatusCode != 200 || !strings.Contains(body, "reword_queue_waiting") {
		t.Errorf("metrics: %d", resp.StatusCode)
	}
}

func TestNewReportsMissingFrontEnd(t *testing.T) {
	_, err := New(Config{Version: "x", Executor: withoutModel(t), WasmDir: t.TempDir(), Store: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "make build") {
		t.Errorf("err = %v, want advice to run make build", err)
	}
}

// --- uploads and images -------------------------------------------------

func pngBytes(t *testing.T, w, h int) []byte {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = byte(i)
	}
	img.Set(0, 0, color.NRGBA{1, 2, 3, 255})
	var b bytes.Buffer
	must(t, png.Encode(&b, img))
	return b.Bytes()
}

func TestUploadAndServeImages(t *testing.T) {
	ts := newTestServer(t, withoutModel(t), func(c *Config) {
		c.UploadBytes, c.UploadPixels = 200<<10, 1_000_000
		c.UploadBurst = 20 // every upload below comes from one address
	})
	photo := pngBytes(t, 40, 30)

	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("image", "photo.png")
	fw.Write(photo)
	mw.Close()
	resp, err := http.Post(ts.URL+"/api/images", mw.FormDataContentType(), &body)
	must(t, err)
	var up struct {
		Hash, URL, Type string
		Width, Height   int
	}
	json.NewDecoder(resp.Body).Decode(&up)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || len(up.Hash) != 64 || up.Width != 40 || up.Type != "image/png" {
		t.Fatalf("multipart upload: %d %+v", resp.StatusCode, up)
	}
	// The raw-body form stores the same bytes under the same hash.
	resp, err = http.Post(ts.URL+"/api/images", "image/png", bytes.NewReader(photo))
	must(t, err)
	var up2 struct{ Hash string }
	json.NewDecoder(resp.Body).Decode(&up2)
	resp.Body.Close()
	if up2.Hash != up.Hash {
		t.Errorf("raw upload hash %s, multipart %s", up2.Hash, up.Hash)
	}
	resp, err = http.Get(ts.URL + up.URL)
	must(t, err)
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Equal(got, photo) || resp.Header.Get("Content-Type") != "image/png" || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") {
		t.Errorf("serving the upload: %d bytes, type %q, cache %q", len(got), resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"))
	}

	// A PNG header that claims 100000×100000 pixels: refused before decoding.
	bomb := pngBytes(t, 1, 1)
	bomb[16], bomb[17], bomb[18], bomb[19] = 0, 1, 0x86, 0xa0
	bomb[20], bomb[21], bomb[22], bomb[23] = 0, 1, 0x86, 0xa0
	binary.BigEndian.PutUint32(bomb[29:], crc32.ChecksumIEEE(bomb[12:29])) // IHDR's CRC
	for _, tc := range []struct {
		name, ctype string
		data        []byte
		status      int
	}{
		{"bomb", "image/png", bomb, http.StatusRequestEntityTooLarge},
		{"not an image", "image/png", []byte("hello, world"), http.StatusUnsupportedMediaType},
		{"corrupt", "image/png", photo[:40], http.StatusUnprocessableEntity},
		{"too large", "image/png", append(bytes.Clone(photo), make([]byte, 300<<10)...), http.StatusRequestEntityTooLarge},
		{"wrong content type", "text/plain", photo, http.StatusUnsupportedMediaType},
		{"empty", "image/png", nil, http.StatusBadRequest},
	} {
		resp, err := http.Post(ts.URL+"/api/images", tc.ctype, bytes.NewReader(tc.data))
		must(t, err)
		var e struct{ Error string }
		json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != tc.status || e.Error == "" {
			t.Errorf("%s: status %d (want %d), error %q", tc.name, resp.StatusCode, tc.status, e.Error)
		}
	}
	for _, p := range []string{"/images/../../etc/passwd", "/images/" + strings.Repeat("a", 64) + ".png", "/images/zz.png"} {
		resp, err := http.Get(ts.URL + p)
		must(t, err)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, resp.StatusCode)
		}
	}
}

// TestClosedSocketIgnoresPongs: once the server closes a socket, a client
// that never answers the close frame but keeps sending pongs must not keep
// the socket (and its jobs) alive: pongs no longer push the read deadline.
func TestClosedSocketIgnoresPongs(t *testing.T) {
	ts := newTestServer(t, withoutModel(t), nil)
	c := ts.connect(t)
	ctx, cancel := contextWithTimeout(time.Second)
	defer cancel()
	must(t, ts.srv.Shutdown(ctx))
	deadline := time.Now().Add(4 * time.Second)
	for time.Now().Before(deadline) {
		if c.ws.WriteControl(websocket.PongMessage, nil, time.Now().Add(time.Second)) != nil {
			break // the server dropped the connection
		}
		ts.srv.mu.Lock()
		open := len(ts.srv.conns)
		ts.srv.mu.Unlock()
		if open == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	ts.srv.mu.Lock()
	defer ts.srv.mu.Unlock()
	if n := len(ts.srv.conns); n != 0 {
		t.Errorf("%d sockets still open 4 s after the server closed them", n)
	}
}

// A client that stops reading while large messages (results with heat
// maps) pile up is disconnected once they pass the byte bound, long before
// sendQueue messages: memory per socket stays bounded by bytes too. The
// bound is lowered to 2 MiB here, and messages are sent until the socket
// closes, so the test does not depend on how much the kernel's socket
// buffers take first.
func TestUnreadLargeMessagesCloseTheSocket(t *testing.T) {
	ts := newTestServer(t, withoutModel(t), nil)
	c := ts.connect(t)
	ts.srv.mu.Lock()
	var sc *conn
	for k := range ts.srv.conns {
		sc = k
	}
	ts.srv.mu.Unlock()
	sc.maxQueued = 2 << 20
	// The heaviest result a model gives: a 32×32 map for each of 77
	// tokens of 5 rows, about half a megabyte of JSON.
	var res protocol.Result
	for row := 0; row < 5; row++ {
		for tok := 0; tok < 77; tok++ {
			res.HeatMaps = append(res.HeatMaps, protocol.HeatMap{Row: row, Token: tok, Text: "word", Width: 32, Height: 32, Values: bytes.Repeat([]byte{byte(tok)}, 32*32)})
		}
	}
	sent := 0
	for ; sent < 2000 && !sc.closing.Load(); sent++ {
		sc.sendMessage(protocol.TypeResult, fmt.Sprint("r", sent), &res)
	}
	for deadline := time.Now().Add(5 * time.Second); !sc.closing.Load(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d unread results sent and the socket is still open", sent)
		}
	}
	// Closed by bytes, with a few messages waiting, not by count with
	// sendQueue of them.
	if n := len(sc.send); n > 8 {
		t.Errorf("the socket closed with %d messages queued; the byte bound (2 MiB, 4 of these) should have closed it first", n)
	}
	for read := 0; ; read++ {
		c.ws.SetReadDeadline(time.Now().Add(30 * time.Second))
		if _, _, err := c.ws.ReadMessage(); err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation || !strings.Contains(ce.Text, "not reading") {
				t.Fatalf("after %d of %d results: %v; want the server to close with 1008 \"client is not reading its messages\"", read, sent, err)
			}
			return
		}
	}
}
