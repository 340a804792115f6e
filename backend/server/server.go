// Package server is Reword's HTTP and WebSocket front door: it serves the
// editor (go-app pages, static files, the pre-compressed WebAssembly),
// health endpoints, and the /ws socket that speaks reword/shared/protocol.
package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"reword/backend/model"
	"reword/shared/protocol"
	"reword/web"
)

// Config is everything New needs.
type Config struct {
	// Version identifies the build (shown to clients, and go-app's cache key).
	Version string
	// ModelDir is the model folder to serve.
	ModelDir string
	// WasmDir holds app.wasm and its pre-compressed siblings (app.wasm.br,
	// app.wasm.gz) as `make build` writes them.
	WasmDir string
	// AllowedOrigins lists extra origins (scheme://host[:port]) whose pages
	// may open the WebSocket; the server's own origin is always allowed.
	AllowedOrigins []string
	// Logger receives structured logs; nil means slog.Default().
	Logger *slog.Logger
}

// Server is the HTTP handler of a Reword process.
type Server struct {
	cfg      Config
	log      *slog.Logger
	model    model.Status
	wasm     *wasmFiles
	origins  map[string]bool
	mux      *http.ServeMux
	upgrader upgrader
}

// New checks the configuration and prepares the routes. A model folder with
// missing files is not an error: the server starts and says what is missing.
func New(cfg Config) (*Server, error) {
	s := &Server{cfg: cfg, log: cfg.Logger, origins: map[string]bool{}}
	if s.log == nil {
		s.log = slog.Default()
	}
	if cfg.Version == "" {
		return nil, errors.New("server: Config.Version is empty; it keys the browser's cache of the front end")
	}
	for _, o := range cfg.AllowedOrigins {
		norm, err := normalizeOrigin(o)
		if err != nil {
			return nil, fmt.Errorf("allowed origin %q: %w", o, err)
		}
		s.origins[norm] = true
	}
	st, err := model.Check(cfg.ModelDir)
	if err != nil {
		return nil, err
	}
	s.model = st
	if !st.Ready() {
		s.log.Warn("model not ready; the editor will say so", "problem", st.Problem())
	}
	s.wasm, err = loadWasm(cfg.WasmDir)
	if err != nil {
		return nil, err
	}
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
	mux.HandleFunc("GET /ws", s.serveWS)
	mux.Handle("/", h)
	s.mux = mux
}

// ServeHTTP adds the headers every response carries and dispatches.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Referrer-Policy", "same-origin")
	hdr.Set("X-Frame-Options", "DENY")
	s.mux.ServeHTTP(w, r)
}

// ModelInfo is what the server tells clients about its model.
func (s *Server) ModelInfo() protocol.ModelInfo {
	return protocol.ModelInfo{
		ID:      s.model.ID,
		Ready:   s.model.Ready(),
		Problem: s.model.Problem(),
		Missing: s.model.Missing,
	}
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(struct {
		Status  string             `json:"status"`
		Version string             `json:"version"`
		Model   protocol.ModelInfo `json:"model"`
	}{"ok", s.cfg.Version, s.ModelInfo()})
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

var _ app.ResourceResolver = (*resources)(nil)
