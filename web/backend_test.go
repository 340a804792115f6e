package web

import "testing"

func TestBackendURL(t *testing.T) {
	for _, tc := range []struct{ ws, path, want string }{
		{"ws://127.0.0.1:8080/ws", "/api/images", "http://127.0.0.1:8080/api/images"},
		{"wss://api.reword.example/ws", "/images/ab.png", "https://api.reword.example/images/ab.png"},
		{"wss://api.reword.example/base/ws?x=1", "/images/ab.png", "https://api.reword.example/images/ab.png"},
		{"ws://h/ws", "https://cdn.example/x.png", "https://cdn.example/x.png"},
		{"not a url", "/api/images", "/api/images"},
	} {
		if got := backendURL(tc.ws, tc.path); got != tc.want {
			t.Errorf("backendURL(%q, %q) = %q, want %q", tc.ws, tc.path, got, tc.want)
		}
	}
}
