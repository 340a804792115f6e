package server

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"reword/static"
)

// wasmFiles is the editor's WebAssembly binary in the encodings `make build`
// produced. go-app's own handler would send the 14 MB binary raw; serving a
// pre-compressed copy cuts the transfer about fourfold with no CPU per request.
type wasmFiles struct {
	dir     string
	rawSize int64
	// encodings available besides identity, best first.
	encodings []wasmEncoding
}

type wasmEncoding struct {
	name, suffix string
}

func loadWasm(dir string) (*wasmFiles, error) {
	raw := filepath.Join(dir, "app.wasm")
	info, err := os.Stat(raw)
	if err != nil {
		return nil, fmt.Errorf("the web front end is not built (%w): run `make build`, or pass the folder holding app.wasm", err)
	}
	w := &wasmFiles{dir: dir, rawSize: info.Size()}
	for _, e := range []wasmEncoding{{"br", ".br"}, {"gzip", ".gz"}} {
		if _, err := os.Stat(raw + e.suffix); err == nil {
			w.encodings = append(w.encodings, e)
		}
	}
	return w, nil
}

func (w *wasmFiles) serve(rw http.ResponseWriter, r *http.Request) {
	name := "app.wasm"
	for _, e := range w.encodings {
		if acceptsEncoding(r.Header.Get("Accept-Encoding"), e.name) {
			rw.Header().Set("Content-Encoding", e.name)
			name += e.suffix
			break
		}
	}
	rw.Header().Set("Content-Type", "application/wasm")
	rw.Header().Add("Vary", "Accept-Encoding")
	// go-app's service worker refetches on a version change; the browser's
	// HTTP cache must still revalidate so a rebuilt binary is never skipped.
	rw.Header().Set("Cache-Control", "no-cache")
	http.ServeFile(rw, r, filepath.Join(w.dir, name))
}

// acceptsEncoding reports whether an Accept-Encoding header allows enc
// (q=0 forbids it).
func acceptsEncoding(header, enc string) bool {
	for _, part := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), enc) {
			continue
		}
		q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}

// resources is go-app's resource resolver for /web/…: the WebAssembly binary
// from the build folder and everything else from the embedded static files.
type resources struct {
	wasm *wasmFiles
}

func (r *resources) Resolve(location string) string {
	if location == "" || location == "/" {
		return "/"
	}
	if strings.Contains(location, "://") || !strings.HasPrefix(location, "/web") {
		return location
	}
	return "/" + strings.Trim(location, "/")
}

var staticFiles = http.FileServerFS(static.FS)

func (r *resources) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	p := strings.TrimPrefix(req.URL.Path, "/web")
	if p == "/app.wasm" {
		r.wasm.serve(w, req)
		return
	}
	r2 := *req
	u := *req.URL
	u.Path = p
	r2.URL = &u
	w.Header().Set("Cache-Control", "no-cache")
	staticFiles.ServeHTTP(w, &r2)
}
