// Package static holds the files the browser loads besides the WebAssembly
// binary: the stylesheet and the icons. They are embedded so that one
// binary serves the whole front end, and are served under /web/.
package static

import "embed"

// FS holds the static files at its root (app.css, icon.svg, …).
//
//go:embed *.css *.svg *.png
var FS embed.FS
