package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"reword/backend/clientaddr"
	"reword/backend/cluster"
	"reword/backend/diffusion"
	"reword/backend/model"
	"reword/backend/ort"
	"reword/backend/photo"
	"reword/backend/server"
	"reword/backend/store"
	"reword/shared/limits"
)

func init() {
	register(command{
		name:    "serve",
		summary: "serve the web editor and the edit WebSocket",
		run:     runServe,
	})
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", "", stderr)
	var env envDefaults
	addr := fs.String("addr", envOr("REWORD_ADDR", "127.0.0.1:8080"), "listen address; the default serves this machine only, :8080 every interface (then name the server with --allowed-hosts) (env REWORD_ADDR)")
	allowedHosts := fs.String("allowed-hosts", envOr("REWORD_ALLOWED_HOSTS", ""), "comma-separated host names requests may be addressed to besides IP addresses and localhost, e.g. reword.example or *.reword.example (* for any); other Host headers get 421, which stops DNS rebinding (env REWORD_ALLOWED_HOSTS)")
	metricsAddr := fs.String("metrics-addr", envOr("REWORD_METRICS_ADDR", ""), "serve /metrics on this address instead of --addr, e.g. 127.0.0.1:9090 (env REWORD_METRICS_ADDR)")
	modelDir := fs.String("model", envOr("REWORD_MODEL", defaultPath("models/tiny")), "model folder (env REWORD_MODEL); required with --role worker, ignored with --role gateway")
	webDir := fs.String("web", envOr("REWORD_WEB", defaultWebDir()), "folder holding app.wasm and its .br/.gz copies, as make build writes them (env REWORD_WEB)")
	origins := fs.String("allow-origins", envOr("REWORD_ALLOW_ORIGINS", ""), "comma-separated extra origins allowed to open the WebSocket, e.g. https://reword.example (env REWORD_ALLOW_ORIGINS); the server's own origin is always allowed")
	data := fs.String("data", envOr("REWORD_DATA", defaultDataDir()), "where photos and results are stored: a folder, or a blob URL such as s3://bucket?region=eu-west-1&endpoint=… (env REWORD_DATA)")
	storeMB := fs.Int64("store-mb", env.int64("REWORD_STORE_MB", limits.StoreBytes>>20), "cap on stored images and results in MiB: this process evicts the least recently used beyond it, for the whole bucket; give it to one process per bucket, 0 to the others (role worker defaults to 0: it never evicts) (env REWORD_STORE_MB)")
	workers := fs.Int("workers", int(env.int64("REWORD_WORKERS", 1)), "edits run at once with --role all: only 1, since one engine runs one edit at a time; run --role worker processes to run edits in parallel (env REWORD_WORKERS)")
	maxQueued := fs.Int("max-queued", int(env.int64("REWORD_MAX_QUEUED", limits.QueuedJobs)), "edits that may wait; more are refused with a busy error (env REWORD_MAX_QUEUED)")
	perClient := fs.Int("max-per-client", int(env.int64("REWORD_MAX_PER_CLIENT", limits.JobsPerClient)), "edits one client address may have queued or running, from all its sockets (env REWORD_MAX_PER_CLIENT)")
	socketsPerAddr := fs.Int("max-sockets-per-address", int(env.int64("REWORD_MAX_SOCKETS_PER_ADDRESS", limits.SocketsPerAddress)), "WebSockets one client address may have open (env REWORD_MAX_SOCKETS_PER_ADDRESS)")
	maxSockets := fs.Int("max-sockets", int(env.int64("REWORD_MAX_SOCKETS", limits.Sockets)), "WebSockets open in all (env REWORD_MAX_SOCKETS)")
	proxies := fs.String("trusted-proxies", envOr("REWORD_TRUSTED_PROXIES", ""), "comma-separated reverse proxies (CIDR prefixes or addresses, e.g. 10.0.0.0/8) whose X-Forwarded-For names the client; from anywhere else the connection's address is the client (env REWORD_TRUSTED_PROXIES)")
	jobTimeout := fs.Duration("job-timeout", env.duration("REWORD_JOB_TIMEOUT", limits.JobTimeout), "an edit running longer is stopped (env REWORD_JOB_TIMEOUT)")
	rateLimit := fs.Float64("messages-per-second", limits.MessagesPerSecond, "messages one socket may send per second, with bursts of twice that (a positive number)")
	uploadMB := fs.Int64("upload-mb", env.int64("REWORD_UPLOAD_MB", limits.UploadBytes>>20), "largest photo upload in MiB (env REWORD_UPLOAD_MB)")
	uploadsAtOnce := fs.Int("uploads-at-once", int(env.int64("REWORD_UPLOADS_AT_ONCE", limits.UploadsAtOnce)), "photo uploads read and decoded at once; more are refused as busy (env REWORD_UPLOADS_AT_ONCE)")
	uploadsPerMinute := fs.Float64("uploads-per-minute", limits.UploadsPerMinute, "photo uploads one client address may make a minute, in bursts of "+strconv.Itoa(limits.UploadBurst)+" (a positive number)")
	threads := fs.Int("threads", int(env.int64("REWORD_THREADS", 0)), "ONNX Runtime threads per model call; 0 = one per core (env REWORD_THREADS)")
	provider := fs.String("provider", envOr("REWORD_PROVIDER", "cpu"), "execution provider: cpu or cuda (env REWORD_PROVIDER)")
	role := fs.String("role", envOr("REWORD_ROLE", "all"), "all: front end and model in one process, with its own embedded NATS; gateway: front end only, edits run on workers over NATS; worker: model only, takes jobs from NATS (env REWORD_ROLE; see docs/deployment.md)")
	natsURL := fs.String("nats", envOr("REWORD_NATS", ""), "NATS server URLs, comma-separated, for --role gateway and worker (env REWORD_NATS)")
	natsCreds := fs.String("nats-creds", envOr("REWORD_NATS_CREDS", ""), "NATS credentials file (user JWT and nkey seed, as nsc writes it) for --role gateway and worker (env REWORD_NATS_CREDS)")
	natsNkey := fs.String("nats-nkey", envOr("REWORD_NATS_NKEY", ""), "file holding this role's NATS user nkey seed, for a server that lists user nkeys (env REWORD_NATS_NKEY)")
	natsCA := fs.String("nats-tls-ca", envOr("REWORD_NATS_TLS_CA", ""), "PEM file of the CAs the NATS servers' certificates must chain to; default: the system's (env REWORD_NATS_TLS_CA)")
	natsCert := fs.String("nats-tls-cert", envOr("REWORD_NATS_TLS_CERT", ""), "PEM client certificate, for NATS servers that verify clients (env REWORD_NATS_TLS_CERT)")
	natsKey := fs.String("nats-tls-key", envOr("REWORD_NATS_TLS_KEY", ""), "the client certificate's PEM key (env REWORD_NATS_TLS_KEY)")
	natsDir := fs.String("nats-dir", envOr("REWORD_NATS_DIR", ""), "--role all: folder of the embedded NATS's files, where jobs wait (env REWORD_NATS_DIR; default <data>/nats, required when --data is a blob URL)")
	replicas := fs.Int("replicas", int(env.int64("REWORD_REPLICAS", 1)), "JetStream replicas of the job stream: 1 for one NATS server, 3 for a 3-node cluster (env REWORD_REPLICAS)")
	ackWait := fs.Duration("ack-wait", env.duration("REWORD_ACK_WAIT", 30*time.Second), "a job whose worker stops heartbeating for this long goes to another worker (env REWORD_ACK_WAIT)")
	admitWindow := fs.Int("admit-window", int(env.int64("REWORD_ADMIT_WINDOW", 1)), "jobs of one model a gateway lets wait in the NATS stream for a worker; the others wait at the gateway, where clients take turns (env REWORD_ADMIT_WINDOW)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	creds := cluster.Credentials{CredsFile: *natsCreds, NKeyFile: *natsNkey, TLSCA: *natsCA, TLSCert: *natsCert, TLSKey: *natsKey}
	if err := checkRole(fs, *role, *natsURL, creds, *replicas, *workers); err != nil {
		return err
	}
	if env.err != nil {
		return usageError("%v", env.err)
	}
	if *role == "worker" && !flagSet(fs, "store-mb") && os.Getenv("REWORD_STORE_MB") == "" {
		*storeMB = 0 // the gateway evicts; see docs/deployment.md
	}
	if err := checkServeLimits(*storeMB, *admitWindow, *uploadMB, *uploadsAtOnce, *socketsPerAddr, *maxSockets, *proxies); err != nil {
		return err
	}
	if err := checkRates(*rateLimit, *uploadsPerMinute); err != nil {
		return err
	}
	prov, err := ort.ParseProvider(*provider)
	if err != nil {
		return usageError("%v", err)
	}
	if fs.NArg() > 0 {
		return usageError("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	o := serveOptions{
		addr: *addr, metricsAddr: *metricsAddr, data: *data, storeBytes: *storeMB << 20, natsDir: *natsDir, modelDir: *modelDir,
		log:    slog.New(slog.NewTextHandler(stderr, nil)),
		stdout: stdout,
		settings: cluster.Settings{
			Replicas: *replicas, AckWait: *ackWait, JobTimeout: *jobTimeout, MaxQueued: *maxQueued,
			AdmitWindow: *admitWindow, MaxPerClient: *perClient,
		},
		engine: diffusion.Options{Threads: *threads, Provider: prov, Instrument: true},
		server: server.Config{
			Version:           buildVersion(),
			WasmDir:           *webDir,
			Store:             *data,
			StoreBytes:        *storeMB << 20,
			MaxPerClient:      *perClient,
			SocketsPerAddress: *socketsPerAddr,
			MaxSockets:        *maxSockets,
			TrustedProxies:    splitList(*proxies),
			MessagesPerSecond: *rateLimit,
			UploadBytes:       *uploadMB << 20,
			UploadsAtOnce:     *uploadsAtOnce,
			UploadsPerMinute:  *uploadsPerMinute,
			AllowedOrigins:    splitList(*origins),
			AllowedHosts:      splitList(*allowedHosts),
			MetricsElsewhere:  *metricsAddr != "",
		},
	}
	o.server.Logger = o.log
	return runRole(ctx, *role, *natsURL, creds, o)
}

// serveOptions is what every role takes from the flags.
type serveOptions struct {
	addr        string
	metricsAddr string
	data        string
	storeBytes  int64
	natsDir     string
	modelDir    string
	settings    cluster.Settings
	engine      diffusion.Options
	server      server.Config // Executor and OpenStore are the role's to set
	log         *slog.Logger
	stdout      io.Writer
}

// runGateway serves the front end and runs edits on the cluster's
// workers until ctx ends.
func runGateway(ctx context.Context, nc *nats.Conn, o serveOptions) error {
	st, err := store.Open(ctx, o.data, o.storeBytes)
	if err != nil {
		return err
	}
	defer st.Close()
	gateway, err := cluster.NewGateway(ctx, cluster.GatewayConfig{Conn: nc, Store: st, Settings: o.settings, Logger: o.log})
	if err != nil {
		return err
	}
	defer gateway.Close()
	return serveEditor(ctx, o, gateway, st, "gateway: edits run on the cluster's workers", nil)
}

// serveEditor serves the editor, its edits run by exec, until ctx ends,
// then shuts down, giving running edits 10 s. local, set in role all, is
// the deployment exec belongs to: its worker takes no further job once
// ctx ends (so that the grace period goes to the running edit, whose
// result the server waits for before closing the sockets), and it closes
// after the server.
func serveEditor(ctx context.Context, o serveOptions, exec server.Executor, st *store.Store, what string, local *cluster.Local) error {
	cfg := o.server
	cfg.Executor, cfg.OpenStore = exec, st
	srv, err := server.New(cfg)
	if err == nil {
		var httpSrv *http.Server
		if httpSrv, err = serveHTTP(ctx, srv, o, what); err == nil {
			return shutdown(srv, httpSrv, local, o)
		}
	}
	if local != nil {
		stopNow, cancel := context.WithCancel(context.Background())
		cancel()
		local.Close(stopNow)
	}
	return err
}

// shutdown stops the edit server first, so that sockets get a close
// reason, then the listener and plain HTTP requests, within 10 s.
func shutdown(srv *server.Server, httpSrv *http.Server, local *cluster.Local, o serveOptions) error {
	o.log.Info("shutting down: finishing running edits for up to 10 s")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if local != nil {
		local.Drain()
	}
	err := srv.Shutdown(ctx)
	if herr := httpSrv.Shutdown(ctx); herr != nil && !errors.Is(herr, context.DeadlineExceeded) {
		err = herr
	}
	if local != nil && local.Close(ctx) {
		o.log.Info("an edit still running after 10 s is stopped; it runs again on the next start")
	}
	return err
}

// serveHTTP serves srv on o.addr until ctx ends, after printing where
// (and what, in parentheses). It returns the HTTP server for the role's
// shutdown, or the error that stopped it serving.
func serveHTTP(ctx context.Context, srv *server.Server, o serveOptions, what string) (*http.Server, error) {
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return nil, err
	}
	httpSrv := srv.HTTPServer()
	errc := make(chan error, 2)
	// /metrics on a listener of its own: one that need not be reachable
	// from where the editor is.
	var mln net.Listener
	if o.metricsAddr != "" {
		if mln, err = net.Listen("tcp", o.metricsAddr); err != nil {
			ln.Close()
			return nil, fmt.Errorf("--metrics-addr: %w", err)
		}
	}
	fmt.Fprintf(o.stdout, "Reword %s serving on http://%s (%s)\n", buildVersion(), displayAddr(ln.Addr()), what)
	if mln != nil {
		metricsSrv := &http.Server{Handler: srv.MetricsHandler(), ReadHeaderTimeout: limits.HeaderTimeout, ReadTimeout: limits.ReadTimeout, IdleTimeout: limits.IdleTimeout}
		httpSrv.RegisterOnShutdown(func() { metricsSrv.Close() })
		fmt.Fprintf(o.stdout, "metrics on http://%s/metrics\n", displayAddr(mln.Addr()))
		go func() {
			if err := metricsSrv.Serve(mln); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	go func() { errc <- httpSrv.Serve(ln) }()
	select {
	case err := <-errc:
		httpSrv.Close()
		return nil, err
	case <-ctx.Done():
		return httpSrv, nil
	}
}

// runWorker serves the model to the cluster until ctx ends.
func runWorker(ctx context.Context, nc *nats.Conn, o serveOptions) error {
	eng, status, err := loadModel(o)
	switch {
	case err != nil:
		return err
	case eng == nil:
		return errors.New(status.Problem())
	}
	defer eng.Close()
	st, err := store.Open(ctx, o.data, o.storeBytes)
	if err != nil {
		return err
	}
	defer st.Close()
	host, _ := os.Hostname()
	w, err := cluster.NewWorker(ctx, cluster.WorkerConfig{Name: host, Conn: nc, Engine: eng, Store: st, Settings: o.settings, PhotoLimits: o.photoLimits(), Logger: o.log})
	if err != nil {
		return err
	}
	o.log.Info("worker taking jobs", "model", eng.Defaults().Model, "nats", cluster.RedactURLs(nc.ConnectedUrl()))
	return w.Run(ctx)
}

// loadModel loads the model folder of a role that runs edits (all,
// worker), logging how long it took or why it failed. A folder that lacks
// files gives no engine, and its status says which (role all then serves
// the editor without a model, telling clients why); an unusable folder or
// a failed load is an error.
func loadModel(o serveOptions) (*diffusion.Engine, model.Status, error) {
	status, err := model.Check(o.modelDir)
	if err != nil || !status.Ready() {
		return nil, status, err
	}
	t0 := time.Now()
	eng, err := diffusion.Load(o.modelDir, o.engine)
	if err != nil {
		o.log.Error("loading the model failed; edits are refused", "model", o.modelDir, "err", err)
		return nil, status, err
	}
	o.log.Info("model loaded", "model", o.modelDir, "took", time.Since(t0).Round(time.Millisecond))
	return eng, status, nil
}

// photoLimits bound the photos a worker edits as the server bounds uploads.
func (o serveOptions) photoLimits() photo.Limits {
	return photo.Limits{MaxBytes: o.server.UploadBytes, MaxPixels: photo.DefaultLimits.MaxPixels, MaxDecodeBytes: photo.DefaultLimits.MaxDecodeBytes}
}

func defaultWebDir() string {
	if exe, err := os.Executable(); err == nil {
		if r, err := filepath.EvalSymlinks(exe); err == nil {
			exe = r
		}
		return filepath.Join(filepath.Dir(exe), "web")
	}
	return filepath.Join("bin", "web")
}

// defaultDataDir is the per-user data folder for photos and results.
func defaultDataDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "reword")
	}
	return filepath.Join(os.TempDir(), "reword")
}

// envDefaults reads flag defaults from the environment and remembers the
// first malformed value, so that a typo in a variable is an error rather
// than a silently ignored setting.
type envDefaults struct{ err error }

func (e *envDefaults) int64(name string, def int64) int64 {
	v, ok := os.LookupEnv(name)
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil && e.err == nil {
		e.err = fmt.Errorf("%s=%q is not a whole number", name, v)
	}
	return n
}

func (e *envDefaults) duration(name string, def time.Duration) time.Duration {
	v, ok := os.LookupEnv(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil && e.err == nil {
		e.err = fmt.Errorf("%s=%q is not a duration like 90s or 10m", name, v)
	}
	return d
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// displayAddr turns a wildcard listen address into one a browser can open.
func displayAddr(a net.Addr) string {
	host, port, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}

// checkRole checks the flags that depend on --role: role all runs its own
// NATS and one worker; gateway and worker need the NATS servers.
func checkRole(fs *flag.FlagSet, role, natsURL string, creds cluster.Credentials, replicas, workers int) error {
	switch role {
	case "all":
		// Role all is one process: its own NATS, one engine, one worker.
		switch {
		case natsURL != "":
			return usageError("--nats is for --role gateway and worker: role all runs its own NATS in process (its files go to --nats-dir)")
		case creds != cluster.Credentials{}:
			return usageError("--nats-creds, --nats-nkey and --nats-tls-* are for --role gateway and worker: role all's NATS runs in process, with no port to secure")
		case replicas != 1:
			return usageError("--role all runs one embedded NATS server: --replicas must be 1, not %d", replicas)
		case workers != 1:
			return usageError("--workers %d: role all runs one in-process worker, as its engine runs one edit at a time; run --role worker processes to run edits in parallel (docs/deployment.md)", workers)
		}
	case "gateway", "worker":
		if natsURL == "" {
			return usageError("--role %s needs --nats (the NATS server URLs)", role)
		}
		// A worker registers its model with the whole cluster, so it never
		// falls back to the repository's tiny model the way role all does.
		if role == "worker" && !flagSet(fs, "model") && os.Getenv("REWORD_MODEL") == "" {
			return usageError("--role worker needs --model (the model folder this worker serves)")
		}
	default:
		return usageError("--role is all, gateway or worker, not %q", role)
	}
	return nil
}

// checkRates checks the rate flags. A rate must be positive and finite:
// the server reads 0 as its default and a limiter allows nothing at a
// negative rate, while NaN turns the upload limit off, none of which a
// flag should do unnoticed.
func checkRates(messagesPerSecond, uploadsPerMinute float64) error {
	for _, r := range []struct {
		flag   string
		v, def float64
		per    string
	}{{"messages-per-second", messagesPerSecond, limits.MessagesPerSecond, "messages a second"},
		{"uploads-per-minute", uploadsPerMinute, limits.UploadsPerMinute, "uploads a minute"}} {
		if !(r.v > 0) || math.IsInf(r.v, 1) {
			return usageError("--%s %v: want a positive, finite number of %s (the default is %v)", r.flag, r.v, r.per, r.def)
		}
	}
	return nil
}

// checkServeLimits checks the numeric flags and the proxy list.
func checkServeLimits(storeMB int64, admitWindow int, uploadMB int64, uploadsAtOnce int, socketsPerAddr, maxSockets int, proxies string) error {
	if storeMB < 0 {
		return usageError("--store-mb must be ≥ 0 (0: never evict), got %d", storeMB)
	}
	if admitWindow < 1 {
		return usageError("--admit-window must be ≥ 1, got %d", admitWindow)
	}
	if uploadMB < 1 || uploadsAtOnce < 1 {
		return usageError("--upload-mb and --uploads-at-once must be ≥ 1, got %d and %d", uploadMB, uploadsAtOnce)
	}
	if socketsPerAddr < 1 || maxSockets < socketsPerAddr {
		return usageError("--max-sockets-per-address must be ≥ 1 and at most --max-sockets, got %d and %d", socketsPerAddr, maxSockets)
	}
	if _, err := clientaddr.NewResolver(splitList(proxies)); err != nil {
		return usageError("--trusted-proxies: %v", err)
	}
	return nil
}

// runRole runs the process as its --role: role all on its own, gateway and
// worker connected to the NATS servers.
func runRole(ctx context.Context, role, natsURL string, creds cluster.Credentials, o serveOptions) error {
	if role == "all" {
		return runAll(ctx, o)
	}
	nc, err := cluster.Connect(natsURL, "reword-"+role, creds)
	if err != nil {
		if strings.Contains(strings.ToLower(err.Error()), "authorization violation") {
			err = fmt.Errorf("%w; give this role's NATS user with --nats-creds or --nats-nkey (docs/deployment.md lists the permissions each role needs)", err)
		}
		return err
	}
	defer nc.Close()
	if role == "worker" {
		return runWorker(ctx, nc, o)
	}
	return runGateway(ctx, nc, o)
}
