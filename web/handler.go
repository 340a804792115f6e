package web

import (
	"strconv"

	"github.com/maxence-charriere/go-app/v10/pkg/app"
)

// HandlerConfig is what the server (or the static site generator) tells the
// page about the deployment.
type HandlerConfig struct {
	// Version identifies the build. go-app's service worker re-fetches every
	// resource when it changes, so a browser never keeps a stale WASM.
	Version string
	// Resources serves /web/… (static files and app.wasm); see go-app's
	// ResourceResolver.
	Resources app.ResourceResolver
	// WasmSize is the uncompressed size of app.wasm in bytes, used by the
	// loading progress bar when the transfer is compressed.
	WasmSize int64
	// WebSocketURL, when not empty, is the backend's WebSocket URL for a
	// front end hosted on another origin.
	WebSocketURL string
}

// NewHandler returns the go-app handler that serves the editor's pages.
func NewHandler(c HandlerConfig) *app.Handler {
	h := &app.Handler{
		Name:            "Reword",
		ShortName:       "Reword",
		Title:           "Reword — edit images by rewording their prompt",
		Description:     "Edit an image by rewording the prompt that made it (Prompt-to-Prompt).",
		Lang:            "en",
		BackgroundColor: "#f7f7f8",
		ThemeColor:      "#1f2430",
		LoadingLabel:    "Loading Reword… {progress}%",
		Version:         c.Version,
		Resources:       c.Resources,
		Styles:          []string{"/web/app.css"},
		// go-app's default icons point at a remote host; every resource the
		// page loads must be local.
		Icon: app.Icon{Default: "/web/icon-192.png", Large: "/web/icon-512.png", SVG: "/web/icon.svg"},
		Env:  map[string]string{},
	}
	if c.WasmSize > 0 {
		h.WasmContentLength = strconv.FormatInt(c.WasmSize, 10)
	}
	if c.WebSocketURL != "" {
		h.Env[WebSocketURLEnv] = c.WebSocketURL
	}
	return h
}
