package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"reword/backend/cluster"
	"reword/backend/cluster/natstest"
	"reword/shared/edit"
	"reword/shared/protocol"
)

// runAsMain makes the test binary act as bin/reword when the roles test
// starts it as a child process, so that the roles run as real processes
// (own signals, own exit status) without building another binary.
const runAsMain = "REWORD_TEST_RUN_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runAsMain) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// syncBuffer collects a child's stderr while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// process is `reword <args>` running as a child process.
type process struct {
	name   string
	cmd    *exec.Cmd
	stdout *bufio.Scanner
	stderr *syncBuffer
	done   chan struct{}
	err    error // valid once done is closed
}

func startReword(t *testing.T, name string, args ...string) *process {
	t.Helper()
	exe, err := os.Executable()
	must(t, err)
	cmd := exec.Command(exe, args...)
	env := []string{runAsMain + "=1"}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REWORD_") {
			env = append(env, kv)
		}
	}
	cmd.Env = env
	p := &process{name: name, cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	out, err := cmd.StdoutPipe()
	must(t, err)
	p.stdout = bufio.NewScanner(out)
	must(t, cmd.Start())
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("%s stderr:\n%s", name, p.stderr.String())
		}
	})
	return p
}

// stop sends SIGTERM and waits for a clean exit (status 0).
func (p *process) stop(t *testing.T) {
	t.Helper()
	must(t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not exit within 30 s of SIGTERM", p.name)
	}
	if p.err != nil {
		t.Errorf("%s exited with %v after SIGTERM", p.name, p.err)
	}
	if strings.Contains(p.stderr.String(), "level=ERROR") {
		t.Errorf("%s logged an error:\n%s", p.name, p.stderr.String())
	}
}

// checkPNG fetches url and reports an error unless it is a PNG served with 200.
func checkPNG(t *testing.T, what, url string) {
	t.Helper()
	resp, err := http.Get(url)
	must(t, err)
	png, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Errorf("%s: %d, %d bytes", what, resp.StatusCode, len(png))
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var servingOn = regexp.MustCompile(`serving on (http://\S+) \(gateway: edits run on the cluster.s workers\)`)

// TestServeRolesAsProcesses runs a gateway and a worker as separate
// processes on an embedded NATS node and a shared data folder, edits
// through the gateway's /ws, then stops both with SIGTERM.
func TestServeRolesAsProcesses(t *testing.T) {
	model := defaultPath("models/tiny")
	if _, err := os.Stat(filepath.Join(model, "model.json")); err != nil {
		t.Fatalf("the tiny model is missing at %s: %v", model, err)
	}
	node, err := cluster.StartNode(cluster.NodeConfig{StoreDir: t.TempDir()})
	must(t, err)
	defer node.Shutdown()
	data, web := t.TempDir(), t.TempDir()
	must(t, os.WriteFile(filepath.Join(web, "app.wasm"), []byte("\x00asm\x01\x00\x00\x00"), 0o644))

	gw := startReword(t, "gateway", "serve", "--role", "gateway", "--nats", node.ClientURL(),
		"--data", data, "--web", web, "--addr", "127.0.0.1:0")
	worker := startReword(t, "worker", "serve", "--role", "worker", "--nats", node.ClientURL(),
		"--data", data, "--model", model, "--threads", "1")

	// The gateway prints its address; it is ready once the worker has
	// registered the model.
	if !gw.stdout.Scan() {
		t.Fatalf("the gateway printed no address: %v", gw.stdout.Err())
	}
	m := servingOn.FindStringSubmatch(gw.stdout.Text())
	if m == nil {
		t.Fatalf("gateway's first line: %q", gw.stdout.Text())
	}
	base := m[1]
	go func() { // drain the rest, so the pipe never fills up
		for gw.stdout.Scan() {
		}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway was not ready within 60 s (last: %v)", err)
		}
		select {
		case <-worker.done:
			t.Fatalf("the worker exited: %v", worker.err)
		case <-time.After(100 * time.Millisecond):
		}
	}

	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/ws", nil)
	must(t, err)
	defer ws.Close()
	read := func() (*protocol.Message, bool) {
		t.Helper()
		ws.SetReadDeadline(time.Now().Add(60 * time.Second))
		typ, b, err := ws.ReadMessage()
		must(t, err)
		if typ == websocket.BinaryMessage {
			_, err := protocol.DecodePreview(b)
			must(t, err)
			return nil, true
		}
		msg, err := protocol.Decode(b)
		must(t, err)
		return msg, false
	}
	msg, _ := read()
	if h, ok := msg.Payload.(*protocol.Hello); !ok || !h.Model.Ready {
		t.Fatalf("hello: %+v", msg.Payload)
	}
	seed, steps := uint64(4), 3
	b, err := protocol.Encode(protocol.TypeRun, "cli-1", protocol.Run{Spec: edit.Spec{
		Source: "a red circle", Targets: []string{"a blue circle"}, Seed: &seed, Steps: &steps,
	}})
	must(t, err)
	must(t, ws.WriteMessage(websocket.TextMessage, b))
	var res *protocol.Result
	previews, started := 0, false
	for res == nil {
		msg, preview := read()
		switch {
		case preview:
			previews++
		case msg.Type == protocol.TypeStarted:
			started = true
		case msg.Type == protocol.TypeResult:
			res = msg.Payload.(*protocol.Result)
		case msg.Type == protocol.TypeError:
			t.Fatalf("the edit failed: %+v", msg.Payload)
		}
	}
	if !started || previews == 0 || len(res.Images) != 2 || res.Cached {
		t.Fatalf("started %v, %d previews, result %+v", started, previews, res)
	}
	checkPNG(t, "the edited image from the gateway", base+res.Images[1].URL)
	ws.Close()

	worker.stop(t)
	gw.stop(t)
	if !strings.Contains(worker.stderr.String(), "worker taking jobs") || !strings.Contains(worker.stderr.String(), "job done") {
		t.Errorf("worker log:\n%s", worker.stderr.String())
	}
	if !strings.Contains(gw.stderr.String(), "shutting down") {
		t.Errorf("gateway log:\n%s", gw.stderr.String())
	}
}

func TestServeRolesNeedTheirFlags(t *testing.T) {
	t.Setenv("REWORD_NATS", "")
	t.Setenv("REWORD_MODEL", "")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"serve", "--role", "gateway"}, "--role gateway needs --nats"},
		{[]string{"serve", "--role", "worker", "--model", "models/tiny"}, "--role worker needs --nats"},
		{[]string{"serve", "--role", "worker", "--nats", "nats://127.0.0.1:1"}, "--role worker needs --model"},
		{[]string{"serve", "--role", "primary"}, `--role is all, gateway or worker, not "primary"`},
		{[]string{"serve", "--nats", "nats://127.0.0.1:1"}, "--nats is for --role gateway and worker"},
		{[]string{"serve", "--replicas", "3"}, "--replicas must be 1, not 3"},
		{[]string{"serve", "--workers", "2"}, "role all runs one in-process worker"},
		{[]string{"serve", "--admit-window", "0"}, "--admit-window must be ≥ 1, got 0"},
		{[]string{"serve", "--data", "s3://bucket?region=x"}, "is a blob URL: give --nats-dir"},
		{[]string{"serve", "--trusted-proxies", "10.0.0.0/8,proxy.example"}, `--trusted-proxies: trusted proxy "proxy.example" is neither an address`},
		{[]string{"serve", "--max-sockets-per-address", "0"}, "--max-sockets-per-address must be ≥ 1 and at most --max-sockets, got 0"},
		{[]string{"serve", "--max-sockets", "4"}, "at most --max-sockets, got 16 and 4"},
		{[]string{"serve", "--nats-nkey", "user.nk"}, "--nats-creds, --nats-nkey and --nats-tls-* are for --role gateway and worker"},
		{[]string{"serve", "--store-mb", "-1"}, "--store-mb must be ≥ 0 (0: never evict), got -1"},
		{[]string{"serve", "--uploads-at-once", "0"}, "--upload-mb and --uploads-at-once must be ≥ 1, got 20 and 0"},
		{[]string{"serve", "--messages-per-second", "-1"}, "--messages-per-second -1: want a positive, finite number of messages a second (the default is 10)"},
		{[]string{"serve", "--messages-per-second", "0"}, "--messages-per-second 0: want a positive"},
		{[]string{"serve", "--messages-per-second", "NaN"}, "--messages-per-second NaN: want a positive"},
		{[]string{"serve", "--messages-per-second", "+Inf"}, "--messages-per-second +Inf: want a positive"},
		{[]string{"serve", "--uploads-per-minute", "NaN"}, "--uploads-per-minute NaN: want a positive, finite number of uploads a minute (the default is 10)"},
		{[]string{"serve", "--uploads-per-minute", "0"}, "--uploads-per-minute 0: want a positive"},
	} {
		var out, errb bytes.Buffer
		if code := run(tc.args, &out, &errb); code != 2 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", tc.args, code, errb.String(), tc.want)
		}
	}
	// With a model, a worker that cannot reach NATS fails (exit 1) and
	// says where it tried.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errb bytes.Buffer
	err := runServe(ctx, []string{"--role", "worker", "--nats", "nats://127.0.0.1:1", "--model", defaultPath("models/tiny")}, io.Discard, &errb)
	if err == nil || errors.Is(err, errUsage) || !strings.Contains(err.Error(), "connecting to NATS at nats://127.0.0.1:1") {
		t.Errorf("worker without a reachable NATS: %v", err)
	}
	// A password in the URL is never printed, in the error or the log.
	errb.Reset()
	err = runServe(ctx, []string{"--role", "gateway", "--nats", "nats://reword:s3cret@127.0.0.1:1"}, io.Discard, &errb)
	if err == nil || strings.Contains(err.Error()+errb.String(), "s3cret") || !strings.Contains(err.Error(), "nats://reword:xxxxx@127.0.0.1:1") {
		t.Errorf("gateway with a password in its NATS URL: %v\n%s", err, errb.String())
	}
	// A missing credentials file is named before connecting.
	err = runServe(ctx, []string{"--role", "gateway", "--nats", "nats://127.0.0.1:1", "--nats-tls-cert", "client.pem"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "a TLS client certificate needs its key") {
		t.Errorf("a client certificate without its key: %v", err)
	}
}

// TestServeOverSecuredNATS runs a gateway and a worker as processes
// against a NATS that requires TLS with client certificates and users
// with their role's permissions — nkey users given with --nats-nkey, JWT
// users with --nats-creds — and the --nats-tls-* flags: the worker
// registers (the gateway becomes ready), and a worker started without
// credentials exits saying how to give them.
func TestServeOverSecuredNATS(t *testing.T) {
	users := []natstest.User{
		{Name: "gateway", Publish: cluster.GatewayPermissions.Publish, Subscribe: cluster.GatewayPermissions.Subscribe},
		{Name: "worker", Publish: cluster.WorkerPermissions.Publish, Subscribe: cluster.WorkerPermissions.Subscribe},
	}
	t.Run("nkeys", func(t *testing.T) {
		sn := natstest.Start(t, users...)
		serveOverSecuredNATS(t, sn, []string{"--nats-nkey", sn.Seeds["gateway"]}, []string{"--nats-nkey", sn.Seeds["worker"]})
	})
	t.Run("creds", func(t *testing.T) {
		sn := natstest.StartOperator(t, users...)
		serveOverSecuredNATS(t, sn, []string{"--nats-creds", sn.Creds["gateway"]}, []string{"--nats-creds", sn.Creds["worker"]})
	})
}

func serveOverSecuredNATS(t *testing.T, sn *natstest.Server, gatewayUser, workerUser []string) {
	data, web := t.TempDir(), t.TempDir()
	must(t, os.WriteFile(filepath.Join(web, "app.wasm"), []byte("\x00asm\x01\x00\x00\x00"), 0o644))
	tlsFlags := []string{"--nats", sn.URL, "--nats-tls-ca", sn.CA, "--nats-tls-cert", sn.ClientCert, "--nats-tls-key", sn.ClientKey, "--data", data}
	gw := startReword(t, "gateway", slices.Concat([]string{"serve", "--role", "gateway", "--web", web, "--addr", "127.0.0.1:0"}, gatewayUser, tlsFlags)...)
	worker := startReword(t, "worker", slices.Concat([]string{"serve", "--role", "worker", "--model", defaultPath("models/tiny"), "--threads", "1"}, workerUser, tlsFlags)...)
	if !gw.stdout.Scan() {
		t.Fatalf("the gateway printed no address: %v\n%s", gw.stdout.Err(), gw.stderr.String())
	}
	m := servingOn.FindStringSubmatch(gw.stdout.Text())
	if m == nil {
		t.Fatalf("gateway's first line: %q", gw.stdout.Text())
	}
	go func() {
		for gw.stdout.Scan() {
		}
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(m[1] + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway was not ready within 60 s: the worker did not register over the secured NATS")
		}
		select {
		case <-worker.done:
			t.Fatalf("the worker exited: %v", worker.err)
		case <-time.After(100 * time.Millisecond):
		}
	}
	stranger := startReword(t, "stranger", append([]string{"serve", "--role", "worker", "--model", defaultPath("models/tiny")}, tlsFlags...)...)
	select {
	case <-stranger.done:
	case <-time.After(60 * time.Second):
		t.Fatal("a worker without credentials was not refused within 60 s")
	}
	if log := stranger.stderr.String(); stranger.err == nil || !strings.Contains(strings.ToLower(log), "authorization violation") || !strings.Contains(log, "--nats-nkey") {
		t.Errorf("a worker without credentials: %v\n%s", stranger.err, log)
	}
	worker.stop(t)
	gw.stop(t)
}
