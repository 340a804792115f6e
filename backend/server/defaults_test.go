package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"reword/shared/protocol"
)

// TestHostAllowList: requests addressed to a name the server was not
// given are refused — a page on a rebound domain reaches neither the
// pages nor the socket of a local instance — while IP addresses,
// localhost and the allowed names are served.
func TestHostAllowList(t *testing.T) {
	ts := newTestServer(t, withoutModel(t), func(c *Config) { c.AllowedHosts = []string{"reword.example", "*.edit.example"} })
	port := ts.Listener.Addr().String()[strings.LastIndex(ts.Listener.Addr().String(), ":"):]
	for host, want := range map[string]int{
		"127.0.0.1" + port:         http.StatusOK,
		"localhost" + port:         http.StatusOK,
		"app.localhost" + port:     http.StatusOK,
		"[::1]" + port:             http.StatusOK,
		"reword.example":           http.StatusOK,
		"REWORD.example" + port:    http.StatusOK,
		"eu.edit.example":          http.StatusOK,
		"evil.example" + port:      http.StatusMisdirectedRequest,
		"reword.example.evil.com":  http.StatusMisdirectedRequest,
		"edit.example":             http.StatusMisdirectedRequest,
		"rebound.attacker.example": http.StatusMisdirectedRequest,
	} {
		req, _ := http.NewRequest("GET", ts.URL+"/healthz", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("Host %s: %d, want %d", host, resp.StatusCode, want)
		}
		if want != http.StatusOK && !strings.Contains(string(b), "--allowed-hosts") {
			t.Errorf("Host %s: the refusal does not say how to allow it: %q", host, b)
		}
	}
	// The rebinding attack on the socket: the page's origin matches the
	// Host it sends, which is not allowed.
	h := http.Header{}
	h.Set("Origin", "http://rebound.attacker.example"+port)
	h.Set("Host", "rebound.attacker.example"+port) // gorilla/websocket sends it as the Host
	u := "ws" + strings.TrimPrefix(ts.URL, "http") + "/ws"
	d := websocket.DefaultDialer
	if ws, resp, err := d.Dial(u, h); err == nil {
		ws.Close()
		t.Error("a socket addressed to a rebound name was opened")
	} else if resp == nil || resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("a socket addressed to a rebound name: %v", err)
	}
	if _, err := New(Config{Version: "x", Executor: withoutModel(t), WasmDir: t.TempDir(), Store: t.TempDir(), AllowedHosts: []string{"reword.example:8080"}}); err == nil {
		t.Error("a host with a port accepted as an allowed host name")
	}
}

// TestMetricsElsewhere: with MetricsElsewhere the main routes have no
// /metrics, and MetricsHandler serves them.
func TestMetricsElsewhere(t *testing.T) {
	ts := newTestServer(t, withoutModel(t), func(c *Config) { c.MetricsElsewhere = true })
	resp, err := http.Get(ts.URL + "/metrics")
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Error("/metrics is still served on the main listener")
	}
	metrics := httptest.NewServer(ts.srv.MetricsHandler())
	defer metrics.Close()
	resp, err = http.Get(metrics.URL)
	must(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "reword_sockets") {
		t.Errorf("metrics on their own listener: %d", resp.StatusCode)
	}
}

// TestRateViolationsCountPerWindow: a long-lived socket that goes over
// the message rate now and then — more often in all than MaxViolations,
// but never that often within one window — stays open; one that keeps
// going over within a window is closed.
func TestRateViolationsCountPerWindow(t *testing.T) {
	const window = 300 * time.Millisecond
	ts := newTestServer(t, withoutModel(t), func(c *Config) {
		c.MessagesPerSecond, c.MaxViolations, c.ViolationWindow = 1, 10, window
	})
	c := ts.connect(t)
	msg := []byte(`{"v":1,"type":"cancel","id":"x","data":{}}`)
	limited := 0
	for round := range 4 {
		for range 8 {
			must(t, c.ws.WriteMessage(websocket.TextMessage, msg))
			if e := c.next().msg.Payload.(*protocol.Error); e.Code == protocol.CodeTooMany {
				limited++
			}
		}
		if round < 3 {
			time.Sleep(window + window/2) // at least a window: the count starts again
		}
	}
	if limited <= 10 {
		t.Fatalf("only %d messages over the rate in 4 rounds of 8 at 1 a second", limited)
	}
	// The socket is still open; now it keeps going over within a window.
	for range 30 {
		if err := c.ws.WriteMessage(websocket.TextMessage, msg); err != nil {
			break
		}
	}
	var err error
	for err == nil {
		c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _, err = c.ws.ReadMessage()
	}
	if !websocket.IsCloseError(err, websocket.ClosePolicyViolation) {
		t.Errorf("a socket over the rate all through a window: %v, want close 1008", err)
	}
}
