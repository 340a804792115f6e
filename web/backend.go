package web

import (
	"net/url"
	"strings"

	"github.com/maxence-charriere/go-app/v10/pkg/app"
)

// wsURL is the backend's WebSocket address: the build-time override for a
// front end hosted elsewhere, else /ws on the page's own origin.
func wsURL() string {
	if u := app.Getenv(WebSocketURLEnv); u != "" {
		return u
	}
	loc := app.Window().Get("location")
	scheme := "ws://"
	if loc.Get("protocol").String() == "https:" {
		scheme = "wss://"
	}
	return scheme + loc.Get("host").String() + "/ws"
}

// backendURL resolves a path of the backend's HTTP API (/api/images, and the
// /images/… URLs results carry) against the origin of its WebSocket URL, so
// that a statically hosted front end reaches the backend it talks to. URLs
// that are already absolute are returned unchanged.
func backendURL(socketURL, path string) string {
	if strings.Contains(path, "://") {
		return path
	}
	u, err := url.Parse(socketURL)
	if err != nil || u.Host == "" {
		return path
	}
	switch u.Scheme {
	case "wss":
		u.Scheme = "https"
	default:
		u.Scheme = "http"
	}
	ref, err := url.Parse(path)
	if err != nil {
		return path
	}
	u.Path, u.RawQuery, u.Fragment = "", "", ""
	return u.ResolveReference(ref).String()
}
