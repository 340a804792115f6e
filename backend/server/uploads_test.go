package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// uploadFrom posts a PNG from the loopback address from and returns the
// status, the error message and the Retry-After header.
func (ts *testServer) uploadFrom(t *testing.T, from string, data []byte) (status int, msg, retry string) {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c := &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	defer c.CloseIdleConnections()
	resp, err := c.Post(ts.URL+"/api/images", "image/png", bytes.NewReader(data))
	must(t, err)
	defer resp.Body.Close()
	var e struct{ Error string }
	json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e.Error, resp.Header.Get("Retry-After")
}

// stalledUpload starts an upload whose body never arrives: headers and a
// few bytes of a declared megabyte.
func (ts *testServer) stalledUpload(t *testing.T, from string) net.Conn {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", ts.Listener.Addr().String())
	must(t, err)
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "POST /api/images HTTP/1.1\r\nHost: %s\r\nContent-Type: image/png\r\nContent-Length: 1000000\r\n\r\n\x89PNG", ts.Listener.Addr())
	return c
}

// metric reads one unlabelled series from /metrics.
func (ts *testServer) metric(t *testing.T, name string) string {
	t.Helper()
	resp, err := http.Get(ts.URL + "/metrics")
	must(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return ""
}

// waitMetric waits until a series reads want.
func (ts *testServer) waitMetric(t *testing.T, name, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for ts.metric(t, name) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s is %s, not %s, after 10 s", name, ts.metric(t, name), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestUploadsAtOnceAreBounded: with UploadsAtOnce uploads in progress
// (their bodies stalled), another is refused at once as busy, with a
// Retry-After; once they end, uploads are taken again.
func TestUploadsAtOnceAreBounded(t *testing.T) {
	ts := newTestServer(t, withoutModel(t), func(c *Config) { c.UploadsAtOnce = 2 })
	a, b := ts.stalledUpload(t, "127.0.7.1"), ts.stalledUpload(t, "127.0.7.2")
	ts.waitMetric(t, "reword_uploads_in_progress", "2")
	status, msg, retry := ts.uploadFrom(t, "127.0.7.3", pngBytes(t, 8, 8))
	if status != http.StatusServiceUnavailable || !strings.Contains(msg, "busy with other uploads (2 at once") || retry != "1" {
		t.Fatalf("an upload past the bound: %d %q, Retry-After %q", status, msg, retry)
	}
	a.Close()
	b.Close()
	ts.waitMetric(t, "reword_uploads_in_progress", "0")
	if status, msg, _ := ts.uploadFrom(t, "127.0.7.3", pngBytes(t, 8, 8)); status != http.StatusCreated {
		t.Errorf("an upload once the others ended: %d %q", status, msg)
	}
}

// TestOneUploadAtATimePerAddress: an address with an upload in progress
// is refused a second one (429, Retry-After), so that it cannot hold every
// slot; another address still gets the free slot, and once the first
// upload ends the address may upload again.
func TestOneUploadAtATimePerAddress(t *testing.T) {
	ts := newTestServer(t, withoutModel(t), func(c *Config) { c.UploadsAtOnce = 2 })
	a := ts.stalledUpload(t, "127.0.9.1")
	ts.waitMetric(t, "reword_uploads_in_progress", "1")
	status, msg, retry := ts.uploadFrom(t, "127.0.9.1", pngBytes(t, 8, 8))
	if status != http.StatusTooManyRequests || !strings.Contains(msg, "an upload from your address is still in progress") || retry != "1" {
		t.Fatalf("a second upload from an address with one in progress: %d %q, Retry-After %q", status, msg, retry)
	}
	if status, msg, _ := ts.uploadFrom(t, "127.0.9.2", pngBytes(t, 8, 8)); status != http.StatusCreated {
		t.Fatalf("an upload from another address: %d %q", status, msg)
	}
	a.Close()
	ts.waitMetric(t, "reword_uploads_in_progress", "0")
	if status, msg, _ := ts.uploadFrom(t, "127.0.9.1", pngBytes(t, 9, 8)); status != http.StatusCreated {
		t.Errorf("an upload once the address's first ended: %d %q", status, msg)
	}
}

// TestUploadRatePerAddress: an address past its burst is refused with
// 429 and when to try again; another address is not.
func TestUploadRatePerAddress(t *testing.T) {
	ts := newTestServer(t, withoutModel(t), func(c *Config) { c.UploadsPerMinute, c.UploadBurst = 0.001, 2 })
	for i := range 2 {
		if status, msg, _ := ts.uploadFrom(t, "127.0.8.1", pngBytes(t, 8+i, 8)); status != http.StatusCreated {
			t.Fatalf("upload %d of a burst of 2: %d %q", i+1, status, msg)
		}
	}
	status, msg, retry := ts.uploadFrom(t, "127.0.8.1", pngBytes(t, 12, 8))
	if status != http.StatusTooManyRequests || !strings.Contains(msg, "too many uploads from your address") || retry == "" {
		t.Fatalf("the third upload: %d %q, Retry-After %q", status, msg, retry)
	}
	if status, msg, _ := ts.uploadFrom(t, "127.0.8.2", pngBytes(t, 12, 8)); status != http.StatusCreated {
		t.Errorf("another address: %d %q", status, msg)
	}
}

// readsUntilClosed reads c until the server closes it, or fails after
// 10 s: far beyond the short timeouts the tests configure.
func readsUntilClosed(t *testing.T, c net.Conn, r *bufio.Reader, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Fatalf("%s: the server kept the connection open: %v", what, err)
	}
}

// TestUploadDeadline: an upload whose body stops arriving is answered
// 408 once UploadTimeout passes, and frees its slot.
func TestUploadDeadline(t *testing.T) {
	ts := newTestServer(t, withoutModel(t), func(c *Config) { c.UploadTimeout = 300 * time.Millisecond })
	c := ts.stalledUpload(t, "127.0.9.1")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatalf("no answer to a stalled upload: %v", err)
	}
	var e struct{ Error string }
	json.NewDecoder(resp.Body).Decode(&e)
	if resp.StatusCode != http.StatusRequestTimeout || !strings.Contains(e.Error, "the upload took longer than 300ms") {
		t.Errorf("stalled upload: %d %q", resp.StatusCode, e.Error)
	}
	ts.waitMetric(t, "reword_uploads_in_progress", "0")
}

// TestStalledRequestIsCut: a request whose body stops arriving (on a
// route that does not read it, so the server drains it) holds its
// connection no longer than ReadTimeout.
func TestStalledRequestIsCut(t *testing.T) {
	ts := newTestServer(t, withoutModel(t), func(c *Config) { c.ReadTimeout = 300 * time.Millisecond })
	c, err := net.Dial("tcp", ts.Listener.Addr().String())
	must(t, err)
	defer c.Close()
	fmt.Fprintf(c, "POST /healthz HTTP/1.1\r\nHost: %s\r\nContent-Length: 1000\r\n\r\nten bytes.", ts.Listener.Addr())
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	must(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	readsUntilClosed(t, c, r, "a stalled request body")
}

// TestIdleConnectionsClose: a keep-alive connection with no further
// request is closed after IdleTimeout.
func TestIdleConnectionsClose(t *testing.T) {
	ts := newTestServer(t, withoutModel(t), func(c *Config) { c.IdleTimeout = 300 * time.Millisecond })
	c, err := net.Dial("tcp", ts.Listener.Addr().String())
	must(t, err)
	defer c.Close()
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", ts.Listener.Addr())
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	resp, err := http.ReadResponse(r, nil)
	must(t, err)
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("healthz: %d, close %v", resp.StatusCode, resp.Close)
	}
	readsUntilClosed(t, c, r, "an idle keep-alive connection")
}
