//go:build !wasm

package staticsite

import (
	"strings"
	"testing"
)

func TestContentSecurityPolicyNamesTheBackend(t *testing.T) {
	for _, c := range []struct{ url, connect, img string }{
		{"wss://api.example/ws", "connect-src 'self' wss://api.example https://api.example;", "img-src 'self' data: blob: https://api.example;"},
		{"ws://127.0.0.1:8080/ws", "connect-src 'self' ws://127.0.0.1:8080 http://127.0.0.1:8080;", "img-src 'self' data: blob: http://127.0.0.1:8080;"},
		{"", "connect-src 'self';", "img-src 'self' data: blob:;"},
	} {
		p, err := ContentSecurityPolicy(c.url)
		if err != nil {
			t.Fatalf("%q: %v", c.url, err)
		}
		for _, want := range []string{c.connect, c.img, "script-src 'self' 'wasm-unsafe-eval';"} {
			if !strings.Contains(p, want) {
				t.Errorf("%q: policy %q lacks %q", c.url, p, want)
			}
		}
	}
}

func TestContentSecurityPolicyRefusesBadURLs(t *testing.T) {
	for _, u := range []string{"https://api.example/ws", "api.example/ws", "wss:///ws", "wss://user@api.example/ws", "wss://a.example;script-src *", "ws://[::1"} {
		if p, err := ContentSecurityPolicy(u); err == nil {
			t.Errorf("%q accepted, policy %q", u, p)
		}
	}
}
