//go:build js && wasm

// Command wasm is the editor's WebAssembly entry point (built to app.wasm).
package main

import (
	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"reword/web"
)

func main() {
	web.Routes()
	app.RunWhenOnBrowser()
}
