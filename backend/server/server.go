// Package server is Reword's HTTP and WebSocket front door: it serves the
// editor (go-app pages, static files, the pre-compressed WebAssembly), runs
// edits submitted over the /ws socket (reword/shared/protocol) — through a
// cluster gateway (Config.Cluster: NATS JetStream workers, which is how
// reword serve runs them in every role), or, as a library, through a fair
// job queue on a diffusion engine in process — stores uploaded photos and
// result images, and exposes health, readiness and Prometheus metrics.
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
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"reword/backend/cluster"
	"reword/backend/diffusion"
	"reword/backend/model"
	"reword/backend/queue"
	"reword/backend/store"
	"reword/shared/protocol"
	"reword/web"
)

// Config is everything New needs. Zero values take the defaults documented
// on each field.
type Config struct {
	// Version identifies the build (shown to clients, and go-app's cache key).
	Version string
	// ModelDir is the model folder to serve.
	ModelDir string
	// ModelError, when set, is why the caller failed to load ModelDir: the
	// server does not load it again and reports this as the model's
	// problem (reword serve, which loads the model for its in-process
	// worker, serves the editor this way when it cannot).
	ModelError error
	// Engine configures how the model runs.
	Engine diffusion.Options
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
	// StoreBytes caps the stored images (default 1 GiB); the least recently
	// used are evicted beyond it.
	StoreBytes int64
	// Queue sizes the job queue (workers, waiting jobs, per-client jobs, job
	// timeout; see queue.Config; default timeout 10 minutes).
	Queue queue.Config
	// MessagesPerSecond limits each socket's incoming messages (default 10,
	// with bursts of twice that).
	MessagesPerSecond float64
	// UploadBytes caps one uploaded photo (default 20 MiB) and UploadPixels
	// its decoded size (default 40 megapixels), checked before decoding.
	UploadBytes  int64
	UploadPixels int
	// AllowedOrigins lists extra origins (scheme://host[:port]) whose pages
	// may open the WebSocket; the server's own origin is always allowed.
	AllowedOrigins []string
	// Logger receives structured logs; nil means slog.Default().
	Logger *slog.Logger
	// Cluster, when set, makes this server a gateway: it loads no model
	// (ModelDir is ignored) and runs edits on the cluster's GPU workers,
	// whose model it learns from their registration. The caller creates
	// it and closes it after Shutdown.
	Cluster *cluster.Gateway
}

func (c *Config) setDefaults() {
	if c.StoreBytes == 0 {
		c.StoreBytes = 1 << 30
	}
	if c.Queue.MaxPerClient == 0 {
		// The gateway path enforces this itself; the in-process queue has
		// the same default.
		c.Queue.MaxPerClient = 4
	}
	if c.Queue.JobTimeout == 0 {
		c.Queue.JobTimeout = 10 * time.Minute
	}
	if c.MessagesPerSecond == 0 {
		c.MessagesPerSecond = 10
	}
	if c.UploadBytes == 0 {
		c.UploadBytes = 20 << 20
	}
	if c.UploadPixels == 0 {
		c.UploadPixels = 40_000_000
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
	model   model.Status
	engine  *diffusion.Engine // nil when the model is not ready
	problem string            // why engine is nil
	store   *store.Store
	queue   *queue.Queue
	cluster *cluster.Gateway // nil: edits run in this process
	metrics *metrics
	wasm    *wasmFiles
	origins map[string]bool
	mux     *http.ServeMux

	upgrader upgrader

	mu      sync.Mutex
	conns   map[*conn]bool
	closing bool
	// awaits counts the goroutines that report how a request ended, so
	// that Shutdown sends those reports before closing the sockets.
	awaits sync.WaitGroup
}

// New checks the configuration, opens the store, loads the model (a model
// folder with missing files or that fails to load is not an error: the
// server starts and says why it cannot edit) and prepares the routes.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	s := &Server{cfg: cfg, log: cfg.Logger, origins: map[string]bool{}, conns: map[*conn]bool{}}
	if cfg.Version == "" {
		return nil, errors.New("server: Config.Version is empty; it keys the browser's cache of the front end")
	}
	if cfg.Store == "" && cfg.OpenStore == nil {
		return nil, errors.New("server: Config.Store is empty: give a data folder or a blob URL")
	}
	for _, o := range cfg.AllowedOrigins {
		norm, err := normalizeOrigin(o)
		if err != nil {
			return nil, fmt.Errorf("allowed origin %q: %w", o, err)
		}
		s.origins[norm] = true
	}
	var err error
	if s.wasm, err = loadWasm(cfg.WasmDir); err != nil {
		return nil, err
	}
	s.cluster = cfg.Cluster
	if s.cluster == nil {
		if s.model, err = model.Check(cfg.ModelDir); err != nil {
			return nil, err
		}
	}
	if s.queue, err = queue.New(cfg.Queue); err != nil {
		return nil, err
	}
	if s.store = cfg.OpenStore; s.store == nil {
		if s.store, err = store.Open(context.Background(), cfg.Store, cfg.StoreBytes); err != nil {
			s.queue.Close(context.Background())
			return nil, err
		}
	}
	if s.cluster == nil {
		s.loadEngine()
	}
	s.metrics = newMetrics(s)
	s.upgrader = newUpgrader(s.checkOrigin)
	s.routes()
	return s, nil
}

func (s *Server) loadEngine() {
	if s.cfg.ModelError != nil {
		s.problem = s.cfg.ModelError.Error()
		return
	}
	if !s.model.Ready() {
		s.problem = s.model.Problem()
		s.log.Warn("model not ready; the editor will say so", "problem", s.problem)
		return
	}
	t0 := time.Now()
	e, err := diffusion.Load(s.cfg.ModelDir, s.cfg.Engine)
	if err != nil {
		s.problem = err.Error()
		s.log.Error("loading the model failed; edits are refused", "model", s.cfg.ModelDir, "err", err)
		return
	}
	s.engine = e
	s.log.Info("model loaded", "model", s.cfg.ModelDir, "took", time.Since(t0).Round(time.Millisecond))
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
	mux.Handle("GET /metrics", s.metrics.handler())
	mux.HandleFunc("GET /ws", s.serveWS)
	mux.HandleFunc("POST /api/images", s.uploadImage)
	mux.HandleFunc("GET /images/{file}", s.serveImage)
	mux.Handle("/", h)
	s.mux = mux
}

// contentSecurityPolicy allows the page's own scripts and WebAssembly
// ('wasm-unsafe-eval' is what WebAssembly.instantiate needs), its own
// images (and blob:/data: for canvases and uploads), and sockets to its own
// origin; nothing is loaded from anywhere else.
const contentSecurityPolicy = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; " +
	"style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; " +
	"worker-src 'self'; manifest-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"

// ServeHTTP adds the headers every response carries and dispatches.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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
	if s.cluster != nil {
		e, err := s.cluster.Model(context.Background(), "")
		if err != nil {
			return protocol.ModelInfo{Problem: err.Error()}
		}
		return e.Info
	}
	info := protocol.ModelInfo{ID: s.model.ID, Ready: s.engine != nil, Problem: s.problem, Missing: s.model.Missing}
	if s.engine != nil {
		info.ID = s.engine.Defaults().Model
		info.Name = s.engine.Manifest().Name
		info.Defaults = protocol.DefaultsOf(s.engine.Defaults())
	}
	return info
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, struct {
		Status  string             `json:"status"`
		Version string             `json:"version"`
		Model   protocol.ModelInfo `json:"model"`
	}{"ok", s.cfg.Version, s.ModelInfo()})
}

// readyz answers 200 only when the model is loaded and the server is not
// shutting down, so a load balancer sends edits only where they can run.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	switch {
	case closing:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "shutting down"})
	case s.cluster != nil:
		if info := s.ModelInfo(); !info.Ready {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "no worker", "problem": info.Problem})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	case s.engine == nil:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "model not ready", "problem": s.problem})
	default:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// Shutdown stops taking edits, lets running ones finish until ctx is done
// (then cancels them), closes every socket with a close reason, and releases
// the engine and the store. The HTTP listener is the caller's to shut down
// (http.Server.Shutdown) — call this first, so sockets get a clean close.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.queue.Close(ctx)
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
	var errs []error
	if s.engine != nil {
		errs = append(errs, s.engine.Close())
	}
	if s.cfg.OpenStore == nil {
		errs = append(errs, s.store.Close())
	}
	return errors.Join(errs...)
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
