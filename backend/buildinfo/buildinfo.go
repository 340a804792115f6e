// Package buildinfo holds the build identity stamped in by the linker
// (make build sets Version with -ldflags "-X reword/backend/buildinfo.Version=...").
package buildinfo

// Version identifies the build. The server uses it as go-app's Handler.Version
// so that browsers never keep a stale WebAssembly binary from a service worker.
var Version = "dev"
