//go:build !wasm

package staticsite

import (
	"fmt"
	"net/url"
	"strings"
)

// ContentSecurityPolicy is the statically hosted pages' policy: the same
// as the server's own pages (own scripts and WebAssembly — 'wasm-unsafe-eval'
// is what WebAssembly.instantiate needs — own styles, images drawn into
// canvases or picked from disk), plus the backend's origin for the
// WebSocket, photo uploads and result images when it is elsewhere.
//
// The pages carry it in a <meta> tag because only the build knows the
// backend. A host may add header policies (vercel.json does, with
// frame-ancestors, which a <meta> policy cannot set), but every policy must
// allow a request, so those must leave default-src, connect-src and img-src
// to this one: a header connect-src 'self' would block the backend.
//
// wsURL is the backend's WebSocket URL, or "" for the page's own origin.
func ContentSecurityPolicy(wsURL string) (string, error) {
	var connect, img string
	if wsURL != "" {
		ws, http, err := backendOrigins(wsURL)
		if err != nil {
			return "", err
		}
		connect, img = " "+ws+" "+http, " "+http
	}
	return "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self' 'unsafe-inline'; " +
		"img-src 'self' data: blob:" + img + "; connect-src 'self'" + connect + "; " +
		"worker-src 'self'; manifest-src 'self'; object-src 'none'; base-uri 'self'", nil
}

// backendOrigins checks a WebSocket URL and returns its origin and the
// matching HTTP origin (ws → http, wss → https), where uploads go and
// images come from.
func backendOrigins(wsURL string) (ws, http string, err error) {
	u, err := url.Parse(wsURL)
	if err != nil {
		return "", "", fmt.Errorf("the backend WebSocket URL %q does not parse: %w", wsURL, err)
	}
	var scheme string
	switch u.Scheme {
	case "wss":
		scheme = "https"
	case "ws":
		scheme = "http"
	default:
		return "", "", fmt.Errorf("the backend WebSocket URL %q must start with wss:// (or ws:// for a local backend), e.g. wss://api.example/ws", wsURL)
	}
	if u.Host == "" || u.User != nil || strings.ContainsAny(u.Host, " ;'\"") {
		return "", "", fmt.Errorf("the backend WebSocket URL %q needs a plain host (and optional port), e.g. wss://api.example/ws", wsURL)
	}
	return u.Scheme + "://" + u.Host, scheme + "://" + u.Host, nil
}
