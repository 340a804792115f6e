package cluster

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"reword/backend/cluster/natstest"
	"reword/backend/diffusion"
	"reword/backend/store"
	"reword/models/tiny/tinytest"
	"reword/shared/protocol"
)

// secureNATS is a JetStream server on loopback that speaks only TLS,
// verifies client certificates, and admits two users, a gateway and a
// worker, each with its role's Permissions: listed by nkey, or (operator
// mode) issued as JWTs in credentials files.
type secureNATS struct {
	*natstest.Server
	gateway, worker Credentials
}

func startSecureNATS(t *testing.T, operatorMode bool) *secureNATS {
	t.Helper()
	users := []natstest.User{
		{Name: "gateway", Publish: GatewayPermissions.Publish, Subscribe: GatewayPermissions.Subscribe},
		{Name: "worker", Publish: WorkerPermissions.Publish, Subscribe: WorkerPermissions.Subscribe},
	}
	start := natstest.Start
	if operatorMode {
		start = natstest.StartOperator
	}
	s := &secureNATS{Server: start(t, users...)}
	tlsFiles := Credentials{TLSCA: s.CA, TLSCert: s.ClientCert, TLSKey: s.ClientKey}
	s.gateway, s.worker = tlsFiles, tlsFiles
	if operatorMode {
		s.gateway.CredsFile, s.worker.CredsFile = s.Creds["gateway"], s.Creds["worker"]
	} else {
		s.gateway.NKeyFile, s.worker.NKeyFile = s.Seeds["gateway"], s.Seeds["worker"]
	}
	return s
}

// violations collects the permission violations NATS reports to a
// connection.
type violations struct {
	mu   sync.Mutex
	seen []string
	news chan struct{}
}

func newViolations() *violations { return &violations{news: make(chan struct{}, 100)} }

func (v *violations) handler() nats.Option {
	return nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		if strings.Contains(strings.ToLower(err.Error()), "permissions violation") {
			v.mu.Lock()
			v.seen = append(v.seen, err.Error())
			v.mu.Unlock()
			v.news <- struct{}{}
		}
	})
}

func (v *violations) list() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.seen...)
}

// TestSecuredNATSLeastPrivilege runs a gateway and a worker, each with
// only its role's Permissions, over TLS with client certificates, as nkey
// users and as JWT users with credentials files: a job runs to its
// result, a running job is cancelled, with no permission violation on
// either side. The worker's user cannot submit a job, the gateway's cannot
// publish a job's events.
func TestSecuredNATSLeastPrivilege(t *testing.T) {
	for _, mode := range []string{"nkeys", "creds"} {
		t.Run(mode, func(t *testing.T) { leastPrivilege(t, startSecureNATS(t, mode == "creds")) })
	}
}

func leastPrivilege(t *testing.T, sn *secureNATS) {
	gwViolations, wViolations := newViolations(), newViolations()
	gwConn, err := Connect(sn.URL, "gateway", sn.gateway, gwViolations.handler())
	must(t, err)
	defer gwConn.Close()
	wConn, err := Connect(sn.URL, "worker", sn.worker, wViolations.handler())
	must(t, err)
	defer wConn.Close()

	dir := t.TempDir()
	gwStore, err := store.Open(context.Background(), dir, 0)
	must(t, err)
	defer gwStore.Close()
	wStore, err := store.Open(context.Background(), dir, 0)
	must(t, err)
	defer wStore.Close()
	g, err := NewGateway(context.Background(), GatewayConfig{Conn: gwConn, Store: gwStore, Logger: quiet})
	must(t, err)
	defer g.Close()
	eng, err := diffusion.Load(tinytest.Dir(t), diffusion.Options{Threads: 1, Instrument: true})
	must(t, err)
	defer eng.Close()
	w, err := NewWorker(context.Background(), WorkerConfig{Name: "w", Conn: wConn, Engine: eng, Store: wStore, Logger: quiet})
	must(t, err)
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	defer func() {
		stop()
		<-done
	}()

	model := eng.Defaults().Model
	resolve := func(run protocol.Run) protocol.Run {
		e, err := g.Model(context.Background(), model)
		must(t, err)
		r, err := run.Spec.Resolve(e.Defaults)
		must(t, err)
		run.Spec = r.Spec()
		return run
	}
	o := newOutcome()
	j, err := g.submit(context.Background(), model, "c", "secured", resolve(runOf(3, 2)), o.events())
	must(t, err)
	must(t, waitJob(t, j, time.Minute))
	if o.result == nil || len(o.result.Images) != 2 {
		t.Fatalf("result over the secured NATS: %+v", o.result)
	}
	long := newOutcome()
	j, err = g.submit(context.Background(), model, "c", "cancelled", resolve(runOf(4, 100)), long.events())
	must(t, err)
	waitStarted(t, long, 30*time.Second)
	j.Cancel()
	if e, ok := waitJob(t, j, 10*time.Second).(*protocol.Error); !ok || e.Code != protocol.CodeCancelled {
		t.Fatalf("cancelled job ended with %v", e)
	}
	deadline := time.Now().Add(30 * time.Second)
	for w.Stats().Cancelled != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the cancel did not reach the worker: %+v", w.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Everything went through flushed connections: any violation has
	// been reported by now.
	must(t, gwConn.Flush())
	must(t, wConn.Flush())
	if v := append(gwViolations.list(), wViolations.list()...); len(v) > 0 {
		t.Fatalf("the roles' permissions are not enough for their work: %v", v)
	}

	// What each role must not do.
	for _, tc := range []struct {
		role    string
		conn    *nats.Conn
		v       *violations
		subject string
	}{
		{"worker", wConn, wViolations, jobSubject(model)},
		{"gateway", gwConn, gwViolations, eventSubject(j.ID)},
		{"worker", wConn, wViolations, cancelSubject(j.ID)},
		{"gateway", gwConn, gwViolations, "$JS.API.STREAM.PURGE.REWORD_JOBS"},
	} {
		must(t, tc.conn.Publish(tc.subject, []byte(`{}`)))
		must(t, tc.conn.Flush())
		select {
		case <-tc.v.news:
		case <-time.After(10 * time.Second):
			t.Errorf("the %s published to %s without a permissions violation", tc.role, tc.subject)
		}
	}
}

// TestSecuredNATSRefusesStrangers: a worker without credentials, with an
// nkey the server does not know, without a client certificate, or not
// trusting the server's CA, is refused, and says why.
func TestSecuredNATSRefusesStrangers(t *testing.T) {
	sn := startSecureNATS(t, false)
	strangerSeed := natstest.UnknownSeed(t)
	tlsOnly := Credentials{TLSCA: sn.CA, TLSCert: sn.ClientCert, TLSKey: sn.ClientKey}
	withSeed := func(c Credentials, seed string) Credentials { c.NKeyFile = seed; return c }
	noCert := sn.worker
	noCert.TLSCert, noCert.TLSKey = "", ""
	noCA := sn.worker
	noCA.TLSCA = ""
	for _, tc := range []struct {
		name string
		c    Credentials
		want string
	}{
		{"no credentials", tlsOnly, "authorization violation"},
		{"an unknown nkey", withSeed(tlsOnly, strangerSeed), "authorization violation"},
		{"no client certificate", noCert, "tls"},
		{"not trusting the CA", noCA, "certificate"},
	} {
		nc, err := Connect(sn.URL, "stranger", tc.c, nats.MaxReconnects(0))
		if err == nil {
			nc.Close()
			t.Errorf("%s: connected", tc.name)
			continue
		}
		if !strings.Contains(strings.ToLower(err.Error()), tc.want) || !strings.Contains(err.Error(), "connecting to NATS at tls://127.0.0.1:") {
			t.Errorf("%s: %v; want it to name %q and the server", tc.name, err, tc.want)
		}
	}
	// The right worker credentials connect.
	nc, err := Connect(sn.URL, "worker", sn.worker)
	must(t, err)
	nc.Close()
	// In operator mode: no credentials file, or one issued by another
	// operator, is refused.
	op := startSecureNATS(t, true)
	other := startSecureNATS(t, true)
	foreign := op.worker
	foreign.CredsFile = other.Creds["worker"]
	for name, c := range map[string]Credentials{"no credentials file": tlsOnlyOf(op), "another operator's user": foreign} {
		if nc, err := Connect(op.URL, "stranger", c, nats.MaxReconnects(0)); err == nil {
			nc.Close()
			t.Errorf("operator mode, %s: connected", name)
		} else if !strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
			t.Errorf("operator mode, %s: %v", name, err)
		}
	}
}

func tlsOnlyOf(sn *secureNATS) Credentials {
	return Credentials{TLSCA: sn.CA, TLSCert: sn.ClientCert, TLSKey: sn.ClientKey}
}

// TestCredentialsChecked: contradictory or missing files are refused
// before connecting, naming the file.
func TestCredentialsChecked(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "absent.creds")
	for _, tc := range []struct {
		c    Credentials
		want string
	}{
		{Credentials{CredsFile: "a", NKeyFile: "b"}, "not both"},
		{Credentials{TLSCert: "cert.pem"}, "needs its key"},
		{Credentials{CredsFile: missing}, "credentials file: stat " + missing},
		{Credentials{TLSCA: missing}, "TLS CA file"},
	} {
		if _, err := Connect("nats://127.0.0.1:1", "x", tc.c); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.c, err, tc.want)
		}
	}
}

// TestConnectErrorsHideSecrets: a password or token in the URLs never
// reaches an error.
func TestConnectErrorsHideSecrets(t *testing.T) {
	_, err := Connect("nats://alice:s3cret@127.0.0.1:1,nats://t0ken@127.0.0.1:2", "x", Credentials{}, nats.MaxReconnects(0))
	if err == nil || strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "t0ken") ||
		!strings.Contains(err.Error(), "nats://alice:xxxxx@127.0.0.1:1,nats://xxxxx@127.0.0.1:2") {
		t.Errorf("err = %v", err)
	}
	for in, want := range map[string]string{
		"nats://h:4222":                   "nats://h:4222",
		"tls://u:p@h:4222/path?q=a@b":     "tls://u:xxxxx@h:4222/path?q=a@b",
		"u:p@h:4222":                      "u:xxxxx@h:4222",
		"nats://a:b@h1, nats://tok@h2:42": "nats://a:xxxxx@h1,nats://xxxxx@h2:42",
	} {
		if got := RedactURLs(in); got != want {
			t.Errorf("RedactURLs(%q) = %q, want %q", in, got, want)
		}
	}
}
