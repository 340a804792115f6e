package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestServeDefaultsToThisMachine: without --addr, reword serve (and so
// make run) listens on 127.0.0.1 only.
func TestServeDefaultsToThisMachine(t *testing.T) {
	t.Setenv("REWORD_ADDR", "")
	os.Unsetenv("REWORD_ADDR")
	var out, errb bytes.Buffer
	run([]string{"serve", "--help"}, &out, &errb)
	if !strings.Contains(errb.String(), `-addr string`) || !strings.Contains(errb.String(), `(default "127.0.0.1:8080")`) {
		t.Errorf("serve --help does not show the loopback default:\n%s", errb.String())
	}
}

var metricsOn = regexp.MustCompile(`^metrics on (http://\S+)$`)

// TestServeMetricsOnTheirOwnListener: with --metrics-addr, /metrics is
// served there and not where the editor is; --allowed-hosts names what
// the editor's listener answers for.
func TestServeMetricsOnTheirOwnListener(t *testing.T) {
	web := t.TempDir()
	must(t, os.WriteFile(filepath.Join(web, "app.wasm"), []byte("\x00asm\x01\x00\x00\x00"), 0o644))
	p := startReword(t, "serve", "serve", "--model", t.TempDir(), "--data", t.TempDir(), "--web", web,
		"--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0", "--allowed-hosts", "reword.example")
	var base, metrics string
	for (base == "" || metrics == "") && p.stdout.Scan() {
		line := p.stdout.Text()
		if m := regexp.MustCompile(`serving on (http://\S+)`).FindStringSubmatch(line); m != nil {
			base = m[1]
		}
		if m := metricsOn.FindStringSubmatch(line); m != nil {
			metrics = m[1]
		}
	}
	if base == "" || metrics == "" {
		t.Fatalf("no serving or metrics line (%q, %q):\n%s", base, metrics, p.stderr.String())
	}
	go func() {
		for p.stdout.Scan() {
		}
	}()
	get := func(url, host string) (int, string) {
		req, _ := http.NewRequest("GET", url, nil)
		if host != "" {
			req.Host = host
		}
		resp, err := http.DefaultClient.Do(req)
		must(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	if status, body := get(metrics, ""); status != http.StatusOK || !strings.Contains(body, "reword_sockets") {
		t.Errorf("metrics listener: %d", status)
	}
	if status, _ := get(base+"/metrics", ""); status == http.StatusOK {
		t.Error("/metrics is served where the editor is")
	}
	if status, _ := get(base+"/healthz", "reword.example"); status != http.StatusOK {
		t.Errorf("an allowed host: %d", status)
	}
	if status, _ := get(base+"/healthz", "other.example"); status != http.StatusMisdirectedRequest {
		t.Errorf("a host not allowed: %d", status)
	}
	p.stop(t)
}
