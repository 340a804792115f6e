package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"reword/backend/server"
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
	addr := fs.String("addr", envOr("REWORD_ADDR", ":8080"), "listen address (env REWORD_ADDR)")
	modelDir := fs.String("model", envOr("REWORD_MODEL", defaultPath("models/tiny")), "model folder (env REWORD_MODEL)")
	webDir := fs.String("web", envOr("REWORD_WEB", defaultWebDir()), "folder holding app.wasm and its .br/.gz copies, as `make build` writes them (env REWORD_WEB)")
	origins := fs.String("allow-origins", envOr("REWORD_ALLOW_ORIGINS", ""), "comma-separated extra origins allowed to open the WebSocket, e.g. https://reword.example (env REWORD_ALLOW_ORIGINS); the server's own origin is always allowed")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	srv, err := server.New(server.Config{
		Version:        buildVersion(),
		ModelDir:       *modelDir,
		WasmDir:        *webDir,
		AllowedOrigins: splitList(*origins),
		Logger:         log,
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	httpSrv := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "Reword %s serving on http://%s (model %s)\n", buildVersion(), displayAddr(ln.Addr()), *modelDir)
	errc := make(chan error, 1)
	go func() { errc <- httpSrv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := httpSrv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
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
