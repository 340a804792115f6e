//go:build !wasm

// Command staticsite writes the editor as a static website for a file host
// (`make static`, which Vercel runs too):
//
//	staticsite -out build/static -wasm bin/web -ws-url wss://api.example/ws -version v1
//
// It is a command of its own rather than a bin/reword subcommand because it
// needs none of the server: it builds without cgo or ONNX Runtime, so a
// hosting provider's build image with only Go can run it, and the server
// binary does not carry a build tool.
package main

import (
	"flag"
	"fmt"
	"os"

	"reword/web/staticsite"
)

func main() {
	var c staticsite.Config
	flag.StringVar(&c.Out, "out", "build/static", "folder to write; must not exist or be empty")
	flag.StringVar(&c.WasmDir, "wasm", "bin/web", "folder holding app.wasm, app.wasm.gz and app.wasm.br (`make build` writes them)")
	flag.StringVar(&c.WebSocketURL, "ws-url", os.Getenv("REWORD_WS_URL"), "the backend's WebSocket URL, e.g. wss://api.example/ws; empty: the page's own origin (env REWORD_WS_URL)")
	flag.StringVar(&c.Version, "version", "", "build version; go-app's service worker refetches every file when it changes")
	flag.Usage = func() {
		fmt.Fprintln(flag.CommandLine.Output(), "usage: staticsite [flags]\n\nWrites the Reword editor as a static website.")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "staticsite: unexpected arguments %q\n", flag.Args())
		flag.Usage()
		os.Exit(2)
	}
	if c.WebSocketURL == "" {
		fmt.Fprintln(os.Stderr, "staticsite: no -ws-url (REWORD_WS_URL): the editor will look for the backend on the page's own origin")
	}
	if err := staticsite.Generate(c); err != nil {
		fmt.Fprintln(os.Stderr, "staticsite:", err)
		os.Exit(1)
	}
	fmt.Printf("static site written to %s (backend %s)\n", c.Out, orOwnOrigin(c.WebSocketURL))
}

func orOwnOrigin(u string) string {
	if u == "" {
		return "on the page's own origin"
	}
	return u
}
