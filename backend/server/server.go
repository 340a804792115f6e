// Package server is Reword's HTTP and WebSocket front door: it serves the
// editor (go-app pages, static files, the pre-compressed WebAssembly),
// validates the edits submitted over the /ws socket (reword/shared/protocol)
// and hands them to its Executor — the cluster gateway, whose NATS
// JetStream workers run them, in every role of reword serve — relaying
// what they stream back; it stores uploaded photos and serves result
// images, and exposes health, readiness and Prometheus metrics.
//
// Routes:
//
//	GET  /                 the editor (go-app; also /e#<link> for edit links)
//	GET  /web/…            static files and /web/app.wasm (brotli or gzip)
//	GET  /ws               the edit WebSocket
//	POST /api/images       upload a photo (multipart field "image", or the raw body)
//	GET  /images/{hash}.png  a stored image, content-addressed and immutable
//	GET  /healthz, /readyz, /metrics
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"reword/backend/clientaddr"
	"reword/backend/cluster"
	"reword/backend/keyrate"
	"reword/backend/store"
	"reword/shared/edit"
	"reword/shared/limits"
	"reword/shared/protocol"
	"reword/web"
)

// Config is everything New needs. Zero values take the defaults documented
// on each field.
type Config struct {
	// Version identifies the build (shown to clients, and go-app's cache key).
	Version string
	// Executor runs the edits (required): a cluster gateway, or NoModel.
	// The caller creates it and closes it after Shutdown, which drains it.
	Executor Executor
	// WasmDir holds app.wasm and its pre-compressed siblings (app.wasm.br,
	// app.wasm.gz) as `make build` writes them.
	WasmDir string
	// Store is where photos and results live: a folder, or a gocloud.dev
	// blob URL such as s3://bucket?region=… (required unless OpenStore is
	// set).
	Store string
	// OpenStore, when set, is the store to use instead of opening Store:
	// the one object a process shares with its cluster gateway and
	// workers, so that it keeps one index and one size cap. The caller
	// closes it after Shutdown.
	OpenStore *store.Store
	// StoreBytes caps the stored images (default limits.StoreBytes); the
	// least recently used are evicted beyond it.
	StoreBytes int64
	// MaxPerClient bounds the requests one client address has queued or
	// running, from all its sockets together (default
	// limits.JobsPerClient).
	MaxPerClient int
	// SocketsPerAddress bounds the sockets one client address has open
	// (default limits.SocketsPerAddress), and MaxSockets those of every
	// client together (default limits.Sockets).
	SocketsPerAddress int
	MaxSockets        int
	// TrustedProxies lists the reverse proxies (CIDR prefixes or
	// addresses) whose X-Forwarded-For header names the client; from
	// anywhere else the header is ignored and the client is the peer
	// (see backend/clientaddr).
	TrustedProxies []string
	// MessagesPerSecond limits each socket's incoming messages, with
	// bursts of twice that (default limits.MessagesPerSecond).
	MessagesPerSecond float64
	// UploadBytes caps one uploaded photo, UploadPixels its decoded size
	// and UploadDecodeBytes the memory decoding it may take, all checked
	// before decoding (defaults limits.UploadBytes, limits.UploadPixels,
	// limits.UploadDecodeBytes).
	UploadBytes       int64
	UploadPixels      int
	UploadDecodeBytes int64
	// UploadsAtOnce bounds the uploads read and decoded at once (default
	// limits.UploadsAtOnce); UploadsPerMinute and UploadBurst limit one
	// client address's uploads (defaults limits.UploadsPerMinute and
	// limits.UploadBurst); UploadTimeout bounds the time one upload's
	// body takes to arrive (default limits.UploadTimeout).
	UploadsAtOnce    int
	UploadsPerMinute float64
	UploadBurst      int
	UploadTimeout    time.Duration
	// HeaderTimeout, ReadTimeout and IdleTimeout are HTTPServer's
	// (defaults limits.HeaderTimeout, limits.ReadTimeout,
	// limits.IdleTimeout).
	HeaderTimeout time.Duration
	ReadTimeout   time.Duration
	IdleTimeout   time.Duration
	// AllowedOrigins lists extra origins (scheme://host[:port]) whose pages
	// may open the WebSocket; the server's own origin is always allowed.
	AllowedOrigins []string
	// AllowedHosts lists the host names requests may be addressed to
	// (their Host header), besides IP addresses and localhost: a name
	// ("reword.example"), a suffix ("*.reword.example"), or "*" for any.
	// Anything else is refused, so that a web page whose domain an
	// attacker points at 127.0.0.1 (DNS rebinding) cannot reach a local
	// instance with the browser's help.
	AllowedHosts []string
	// MetricsElsewhere takes /metrics off the routes: the caller serves
	// MetricsHandler on a listener of its own.
	MetricsElsewhere bool
	// More than MaxViolations rate-limit violations within
	// ViolationWindow close a socket (defaults limits.MessageViolations and
	// limits.ViolationWindow): a client that keeps sending too fast is
	// cut off, one that sometimes does is not, however long it stays.
	MaxViolations   int
	ViolationWindow time.Duration
	// Logger receives structured logs; nil means slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.StoreBytes == 0 {
		c.StoreBytes = limits.StoreBytes
	}
	if c.MaxPerClient == 0 {
		c.MaxPerClient = limits.JobsPerClient
	}
	if c.SocketsPerAddress == 0 {
		c.SocketsPerAddress = limits.SocketsPerAddress
	}
	if c.MaxSockets == 0 {
		c.MaxSockets = limits.Sockets
	}
	if c.MessagesPerSecond == 0 {
		c.MessagesPerSecond = limits.MessagesPerSecond
	}
	if c.UploadBytes == 0 {
		c.UploadBytes = limits.UploadBytes
	}
	if c.UploadPixels == 0 {
		c.UploadPixels = limits.UploadPixels
	}
	if c.UploadDecodeBytes == 0 {
		c.UploadDecodeBytes = limits.UploadDecodeBytes
	}
	if c.UploadsAtOnce == 0 {
		c.UploadsAtOnce = limits.UploadsAtOnce
	}
	if c.UploadsPerMinute == 0 {
		c.UploadsPerMinute = limits.UploadsPerMinute
	}
	if c.UploadBurst == 0 {
		c.UploadBurst = limits.UploadBurst
	}
	if c.MaxViolations == 0 {
		c.MaxViolations = limits.MessageViolations
	}
	if c.ViolationWindow == 0 {
		c.ViolationWindow = limits.ViolationWindow
	}
	if c.UploadTimeout == 0 {
		c.UploadTimeout = limits.UploadTimeout
	}
	if c.HeaderTimeout == 0 {
		c.HeaderTimeout = limits.HeaderTimeout
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = limits.ReadTimeout
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = limits.IdleTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Server is the HTTP handler of a Reword process. Create it with New and
// stop it with Shutdown.
type Server struct {
	cfg     Config
	log     *slog.Logger
	exec    Executor
	store   *store.Store
	metrics *metrics
	wasm    *wasmFiles
	origins map[string]bool
	mux     *http.ServeMux

	upgrader upgrader
	clients  clientaddr.Resolver
	// uploads holds a token per upload in progress; uploadRate limits
	// each client address's uploads.
	uploads    chan struct{}
	uploadRate *keyrate.Limiter
	// uploading holds the client addresses with an upload in progress:
	// one at a time each, so that one address cannot take every slot.
	uploadingMu sync.Mutex
	uploading   map[string]bool

	mu      sync.Mutex
	conns   map[*conn]bool
	closing bool
	// sockets counts the sockets open or being opened, in all and per
	// client address; addrJobs the requests queued or running per client
	// address.
	sockets     int
	addrSockets map[string]int
	addrJobs    map[string]int
	// awaits counts the goroutines that report how a request ended, so
	// that Shutdown sends those reports before closing the sockets.
	awaits sync.WaitGroup
}

// New checks the configuration, opens the store and prepares the routes.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	s := &Server{cfg: cfg, log: cfg.Logger, exec: cfg.Executor, origins: map[string]bool{}, conns: map[*conn]bool{},
		addrSockets: map[string]int{}, addrJobs: map[string]int{}}
	switch {
	case cfg.Version == "":
		return nil, errors.New("server: Config.Version is empty; it keys the browser's cache of the front end")
	case cfg.Executor == nil:
		return nil, errors.New("server: Config.Executor is nil: give the cluster gateway that runs the edits, or NoModel")
	case cfg.Store == "" && cfg.OpenStore == nil:
		return nil, errors.New("server: Config.Store is empty: give a data folder or a blob URL")
	case cfg.MaxPerClient < 1:
		return nil, fmt.Errorf("server: Config.MaxPerClient must be ≥ 1, got %d", cfg.MaxPerClient)
	case cfg.SocketsPerAddress < 1 || cfg.MaxSockets < cfg.SocketsPerAddress:
		return nil, fmt.Errorf("server: sockets per address must be ≥ 1 and at most the sockets in all, got %d and %d", cfg.SocketsPerAddress, cfg.MaxSockets)
	case cfg.UploadBytes < 1 || cfg.UploadPixels < 1 || cfg.UploadDecodeBytes < 1 || cfg.UploadsAtOnce < 1:
		return nil, fmt.Errorf("server: upload limits must be ≥ 1, got %d bytes, %d pixels, %d bytes to decode, %d at once",
			cfg.UploadBytes, cfg.UploadPixels, cfg.UploadDecodeBytes, cfg.UploadsAtOnce)
	case cfg.UploadTimeout < 0 || cfg.HeaderTimeout < 0 || cfg.ReadTimeout < 0 || cfg.IdleTimeout < 0:
		return nil, errors.New("server: timeouts must be positive (or zero for the default)")
	}
	for _, h := range cfg.AllowedHosts {
		if h = strings.TrimSpace(h); h == "" || strings.ContainsAny(h, "/:@ ") || strings.Contains(h[1:], "*") || h != "*" && strings.HasPrefix(h, "*") && !strings.HasPrefix(h, "*.") {
			return nil, fmt.Errorf("allowed host %q: give a host name (reword.example), a suffix (*.reword.example) or *", h)
		}
	}
	s.uploads = make(chan struct{}, cfg.UploadsAtOnce)
	s.uploading = map[string]bool{}
	var err error
	if s.uploadRate, err = keyrate.New(cfg.UploadsPerMinute, cfg.UploadBurst); err != nil {
		return nil, fmt.Errorf("server: uploads per minute: %w", err)
	}
	if s.clients, err = clientaddr.NewResolver(cfg.TrustedProxies); err != nil {
		return nil, err
	}
	for _, o := range cfg.AllowedOrigins {
		norm, err := normalizeOrigin(o)
		if err != nil {
			return nil, fmt.Errorf("allowed origin %q: %w", o, err)
		}
		s.origins[norm] = true
	}
	if s.wasm, err = loadWasm(cfg.WasmDir); err != nil {
		return nil, err
	}
	if s.store = cfg.OpenStore; s.store == nil {
		if s.store, err = store.Open(context.Background(), cfg.Store, cfg.StoreBytes); err != nil {
			return nil, err
		}
	}
	s.metrics = newMetrics(s)
	s.upgrader = newUpgrader(s.checkOrigin)
	s.routes()
	return s, nil
}

func (s *Server) routes() {
	h := web.NewHandler(web.HandlerConfig{
		Version:   s.cfg.Version,
		Resources: &resources{wasm: s.wasm},
		WasmSize:  s.wasm.rawSize,
	})
	web.Routes()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	if !s.cfg.MetricsElsewhere {
		mux.Handle("GET /metrics", s.metrics.handler())
	}
	mux.HandleFunc("GET /ws", s.serveWS)
	mux.HandleFunc("POST /api/images", s.uploadImage)
	mux.HandleFunc("GET /images/{file}", s.serveImage)
	mux.Handle("/", h)
	s.mux = mux
}

// HTTPServer is the HTTP server to run s on: besides the header timeout,
// a whole request (but an upload, which sets its own deadline) must
// arrive within ReadTimeout, and a keep-alive connection without a
// request closes after IdleTimeout, so that slow or idle clients cannot
// hold connections open. There is no write timeout: a slow client may
// take long to download the WebAssembly, and sockets set their own
// deadlines per message.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s,
		ReadHeaderTimeout: s.cfg.HeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelInfo),
	}
}

// contentSecurityPolicy allows the page's own scripts and WebAssembly
// ('wasm-unsafe-eval' is what WebAssembly.instantiate needs), its own
// images (and blob:/data: for canvases and uploads), and sockets to its own
// origin; nothing is loaded from anywhere else.
const contentSecurityPolicy = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; " +
	"style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; " +
	"worker-src 'self'; manifest-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"

// MetricsHandler serves the Prometheus metrics, for a listener of their
// own (Config.MetricsElsewhere).
func (s *Server) MetricsHandler() http.Handler { return s.metrics.handler() }

// ServeHTTP adds the headers every response carries and dispatches.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.hostAllowed(r.Host) {
		s.metrics.errors.WithLabelValues("host").Inc()
		http.Error(w, fmt.Sprintf("this server does not answer for host %q: add it to reword serve --allowed-hosts (the check keeps other sites' pages out of a local instance)", r.Host), http.StatusMisdirectedRequest)
		return
	}
	hdr := w.Header()
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "same-origin")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Content-Security-Policy", contentSecurityPolicy)
	if s.allowCORS(w, r) {
		return
	}
	s.mux.ServeHTTP(w, r)
}

// allowCORS lets a front end hosted on an allow-listed origin (static
// hosting) upload photos and read images; it answers preflight requests
// itself and reports whether it did.
func (s *Server) allowCORS(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || !(strings.HasPrefix(r.URL.Path, "/api/") || strings.HasPrefix(r.URL.Path, "/images/")) {
		return false
	}
	w.Header().Add("Vary", "Origin")
	norm, err := normalizeOrigin(origin)
	if err != nil || !s.origins[norm] {
		return false
	}
	w.Header().Set("Access-Control-Allow-Origin", origin)
	if r.Method != http.MethodOptions {
		return false
	}
	w.Header().Set("Access-Control-Allow-Methods", "GET, POST")
	w.Header().Set("Access-Control-Allow-Headers", "Content-Type")
	w.Header().Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
	return true
}

// ModelInfo is what the server tells clients about its model.
func (s *Server) ModelInfo() protocol.ModelInfo {
	e, err := s.exec.Model(context.Background(), "")
	if err != nil {
		info := e.Info
		info.Ready, info.Defaults = false, nil
		if info.Problem == "" {
			info.Problem = err.Error()
		}
		return info
	}
	return e.Info
}

// hello is what a client is told when it connects: the server, and the
// model a spec that names none runs on, or every model when there are
// several to choose from.
func (s *Server) hello() protocol.Hello {
	model, models := s.models()
	return protocol.Hello{Server: s.cfg.Version, Protocol: protocol.Version, Meaning: edit.MeaningVersion, Model: model, Models: models}
}

// modelsWait bounds the registry read of a hello or a health check.
const modelsWait = 5 * time.Second

// models is what clients are told about the models, from one read of the
// registry, so that the two never disagree (a worker of a second model
// may join between two reads): the model a spec naming none runs on, and,
// when several are served, every one of them (the first then says to name
// one).
func (s *Server) models() (protocol.ModelInfo, []protocol.ModelInfo) {
	ctx, cancel := context.WithTimeout(context.Background(), modelsWait)
	defer cancel()
	entries, err := s.exec.Models(ctx)
	switch {
	case err == nil && len(entries) == 1:
		return entries[0].Info, nil
	case err != nil || len(entries) == 0:
		return s.ModelInfo(), nil // why none can run
	}
	out := make([]protocol.ModelInfo, len(entries))
	for i, e := range entries {
		out[i] = e.Info
	}
	slices.SortFunc(out, func(a, b protocol.ModelInfo) int { return strings.Compare(a.ID, b.ID) })
	ids := make([]string, len(out))
	for i, m := range out {
		ids[i] = m.ID
	}
	return protocol.ModelInfo{Problem: cluster.SeveralModelsError(ids).Error()}, out
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	model, models := s.models()
	writeJSON(w, http.StatusOK, struct {
		Status  string               `json:"status"`
		Version string               `json:"version"`
		Model   protocol.ModelInfo   `json:"model"`
		Models  []protocol.ModelInfo `json:"models,omitempty"`
	}{"ok", s.cfg.Version, model, models})
}

// readyz answers 200 only when a model can run edits and the server is not
// shutting down, so a load balancer sends edits only where they can run.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "shutting down"})
		return
	}
	// Several models served is ready: each spec names its own.
	if _, err := s.exec.Model(r.Context(), ""); err != nil && !errors.Is(err, cluster.ErrSeveralModels) {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "model not ready", "problem": s.ModelInfo().Problem})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// Shutdown stops taking edits and drains the executor (a request no
// worker has started ends with the shutdown error), lets running ones
// finish until ctx is done, then closes every socket with a close reason
// (a request still running then keeps running on its worker, and its
// result lands in the store, where the client finds it by sending the
// same request again) and releases the store it opened. The HTTP listener
// is the caller's to shut down (http.Server.Shutdown) — call this first,
// so sockets get a clean close.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.exec.Drain()
	reported := make(chan struct{})
	go func() {
		s.awaits.Wait()
		close(reported)
	}()
	select {
	case <-reported:
	case <-ctx.Done():
	}
	s.mu.Lock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.goAway(ctx)
		}()
	}
	wg.Wait()
	if s.cfg.OpenStore == nil {
		return s.store.Close()
	}
	return nil
}

// hostAllowed reports whether a request addressed to host (its Host
// header) is answered: an IP address (DNS rebinding needs a name),
// localhost and its subdomains (browsers resolve them to loopback
// themselves), or a name in AllowedHosts.
func (s *Server) hostAllowed(host string) bool {
	name := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		name = h
	}
	name = strings.TrimSuffix(strings.ToLower(strings.Trim(name, "[]")), ".")
	if name == "" {
		return false
	}
	if _, err := netip.ParseAddr(name); err == nil || name == "localhost" || strings.HasSuffix(name, ".localhost") {
		return true
	}
	for _, a := range s.cfg.AllowedHosts {
		a = strings.ToLower(strings.TrimSpace(a))
		if a == "*" || a == name || strings.HasPrefix(a, "*.") && strings.HasSuffix(name, a[1:]) {
			return true
		}
	}
	return false
}

// checkOrigin allows requests without an Origin header (non-browser
// clients such as the CLI cannot be protected by origin checks anyway), the
// server's own origin, and the configured allow-list.
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	norm, err := normalizeOrigin(origin)
	if err != nil {
		return false
	}
	u, _ := url.Parse(norm)
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	return s.origins[norm]
}

func normalizeOrigin(o string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(o))
	if err != nil {
		return "", err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", errors.New("an origin is scheme://host[:port], for example https://reword.example")
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}
