// Package web is Reword's browser editor: go-app components compiled to
// WebAssembly for the browser and, unchanged, into the server, which uses
// them to prerender the first page and to configure go-app's handler.
//
// Everything the editor computes from prompts (tokens, alignment, the edit
// spec) comes from reword/shared, the same code the server runs; the server
// still re-validates whatever the editor sends.
package web

import "github.com/maxence-charriere/go-app/v10/pkg/app"

// WebSocketURLEnv names the go-app environment variable that, when set at
// build time (static hosting), points the editor at a backend on another
// origin. Empty means the page's own origin.
const WebSocketURLEnv = "REWORD_WS_URL"

// EditPath is the page edit links open (/e#v1.…); the editor also reads a
// link on its root page, where it keeps the current edit's link.
const EditPath = "/e"

// Routes registers the editor's pages with go-app. Both the WebAssembly
// main and the server call it: go-app prerenders on the server only the
// routes it knows.
func Routes() {
	app.Route("/", func() app.Composer { return &Editor{} })
	app.Route(EditPath, func() app.Composer { return &Editor{} })
}
