//go:build !wasm

// Package staticsite writes the editor as a static website — prerendered
// pages, go-app's loader scripts, the static files and the compressed
// WebAssembly — so that any file host (Vercel, GitHub Pages, a CDN bucket)
// serves the front end while bin/reword serve runs the edits elsewhere.
//
// The backend's WebSocket URL is fixed at build time: it is written into
// the pages as go-app environment (the editor connects there and derives the
// upload and image URLs from its origin) and into the pages' Content
// Security Policy, whose connect-src must name the backend.
//
// It is not built for WebAssembly: go-app's generator is server-side only.
package staticsite

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"reword/static"
	"reword/web"
)

// Config says what to generate and where.
type Config struct {
	// Out is the folder to write; it must not exist or be empty, so that a
	// stale file from an earlier build is never deployed.
	Out string
	// WasmDir holds app.wasm and its compressed copies (app.wasm.gz,
	// app.wasm.br) as `make build` writes them.
	WasmDir string
	// WebSocketURL is the backend's WebSocket (ws:// or wss://…/ws). Empty
	// means the page's own origin, for a host that proxies /ws, /api and
	// /images to the backend.
	WebSocketURL string
	// Version identifies the build; go-app's service worker refetches every
	// file when it changes.
	Version string
}

// wasmFiles are copied next to each other under web/: hosts that serve
// pre-compressed siblings (nginx gzip_static, Caddy's precompressed, most
// CDNs' origin rules) send the brotli or gzip copy, others the raw binary.
// Only app.wasm is required; `make build` skips brotli when it is missing.
var wasmFiles = []struct {
	name     string
	required bool
}{{"app.wasm", true}, {"app.wasm.gz", false}, {"app.wasm.br", false}}

// Generate writes the site into c.Out.
func Generate(c Config) error {
	if c.Out == "" {
		return errors.New("no output folder given")
	}
	if c.Version == "" {
		return errors.New("no version given: go-app's service worker needs one per build to drop cached files")
	}
	policy, err := ContentSecurityPolicy(c.WebSocketURL)
	if err != nil {
		return err
	}
	if err := checkEmpty(c.Out); err != nil {
		return err
	}
	raw, err := os.Stat(filepath.Join(c.WasmDir, "app.wasm"))
	if err != nil {
		return fmt.Errorf("the WebAssembly editor is not built (%w): run `make build` first", err)
	}

	web.Routes()
	h := web.NewHandler(web.HandlerConfig{
		Version:      c.Version,
		WasmSize:     raw.Size(),
		WebSocketURL: c.WebSocketURL,
	})
	// A <meta> policy, because the pages are the only place that knows the
	// backend's origin at build time; the host's headers add what a meta
	// policy cannot carry (frame-ancestors). go-app puts raw headers after
	// its own <script> and stylesheet tags, all of them same-origin files
	// that the policy allows anyway; everything the policy must govern (the
	// WebAssembly compile, sockets, uploads, images) happens after parsing.
	h.RawHeaders = append(h.RawHeaders,
		fmt.Sprintf(`<meta http-equiv="Content-Security-Policy" content="%s">`, policy))
	if err := app.GenerateStaticWebsite(c.Out, h); err != nil {
		return fmt.Errorf("prerendering the pages into %s: %w", c.Out, err)
	}

	webDir := filepath.Join(c.Out, "web")
	if err := os.MkdirAll(webDir, 0o755); err != nil {
		return err
	}
	if err := copyFS(webDir, static.FS); err != nil {
		return fmt.Errorf("copying the static files: %w", err)
	}
	for _, f := range wasmFiles {
		err := copyFile(filepath.Join(webDir, f.name), filepath.Join(c.WasmDir, f.name))
		if errors.Is(err, fs.ErrNotExist) && !f.required {
			continue
		}
		if err != nil {
			return fmt.Errorf("copying %s: %w", f.name, err)
		}
	}
	return nil
}

// checkEmpty accepts a folder that does not exist yet or is empty.
func checkEmpty(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return fmt.Errorf("%s is not empty: remove it first (`make static` does), so no stale file is deployed", dir)
	}
	return nil
}

// copyFS copies the files at the root of fsys into dir.
func copyFS(dir string, fsys fs.FS) error {
	return fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		src, err := fsys.Open(path)
		if err != nil {
			return err
		}
		defer src.Close()
		return writeFile(filepath.Join(dir, filepath.FromSlash(path)), src)
	})
}

func copyFile(dst, src string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	return writeFile(dst, f)
}

func writeFile(dst string, r io.Reader) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	f, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
