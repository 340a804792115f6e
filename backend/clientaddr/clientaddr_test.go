package clientaddr

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"
)

func request(remote string, xff ...string) *http.Request {
	r := &http.Request{RemoteAddr: remote, Header: http.Header{}}
	for _, v := range xff {
		r.Header.Add("X-Forwarded-For", v)
	}
	return r
}

func TestAddrTrustsOnlyConfiguredProxies(t *testing.T) {
	proxies, err := NewResolver([]string{"10.0.0.0/8", "192.0.2.10", "fd00::/8"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		r      Resolver
		req    *http.Request
		want   string
		wantOK bool
	}{
		{"no proxies: the peer, header ignored", Resolver{}, request("203.0.113.5:4000", "198.51.100.1"), "203.0.113.5", true},
		{"untrusted peer: header ignored", proxies, request("203.0.113.5:4000", "198.51.100.1"), "203.0.113.5", true},
		{"trusted peer: the hop before it", proxies, request("10.1.2.3:4000", "198.51.100.1"), "198.51.100.1", true},
		{"client-written entries to the left are skipped", proxies, request("10.1.2.3:4000", "6.6.6.6, 198.51.100.1"), "198.51.100.1", true},
		{"a chain of trusted proxies", proxies, request("10.1.2.3:4000", "198.51.100.1, 192.0.2.10, 10.9.9.9"), "198.51.100.1", true},
		{"several headers are one list", proxies, request("10.1.2.3:4000", "6.6.6.6", "198.51.100.1, 10.0.0.1"), "198.51.100.1", true},
		{"trusted peer without the header", proxies, request("10.1.2.3:4000"), "10.1.2.3", true},
		{"malformed entry: the last hop read", proxies, request("10.1.2.3:4000", "198.51.100.1, garbage"), "10.1.2.3", true},
		{"entry with a port", proxies, request("10.1.2.3:4000", "198.51.100.1:5555"), "198.51.100.1", true},
		{"IPv6 peer behind an IPv6 proxy", proxies, request("[fd00::1]:4000", "[2001:db8::7]:443"), "2001:db8::7", true},
		{"IPv4-mapped peer", Resolver{}, request("[::ffff:203.0.113.5]:4000"), "203.0.113.5", true},
		{"unreadable peer", Resolver{}, request("@unix"), "", false},
	} {
		a, ok := tc.r.Addr(tc.req)
		got := ""
		if ok {
			got = a.String()
		}
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("%s: got %q %v, want %q %v", tc.name, got, ok, tc.want, tc.wantOK)
		}
	}
}

func TestKeyGroupsIPv6ByPrefix(t *testing.T) {
	r := Resolver{}
	a := r.Key(request("[2001:db8:1:2::1]:1"))
	b := r.Key(request("[2001:db8:1:2:ffff::9]:1"))
	c := r.Key(request("[2001:db8:1:3::1]:1"))
	if a != b || a == c || a != "2001:db8:1:2::/64" {
		t.Errorf("keys %q %q %q: want one key per /64", a, b, c)
	}
	if k := r.Key(request("203.0.113.5:1")); k != "203.0.113.5" {
		t.Errorf("IPv4 key %q", k)
	}
	if k := r.Key(request("nowhere")); k != "unknown" {
		t.Errorf("unreadable peer's key %q", k)
	}
}

func TestNewResolverRejectsMalformedEntries(t *testing.T) {
	for _, bad := range []string{"10.0.0.0/33", "proxy.example", "10.0.0", "::1/200"} {
		_, err := NewResolver([]string{bad})
		if err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("%q: err = %v, want an error naming it", bad, err)
		}
	}
	r, err := NewResolver([]string{" 10.0.0.0/8 ", "", "::ffff:192.0.2.0/120"})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Trusts(netip.MustParseAddr("10.200.0.1")) || !r.Trusts(netip.MustParseAddr("192.0.2.77")) || r.Trusts(netip.MustParseAddr("11.0.0.1")) {
		t.Error("trusted prefixes not applied as written")
	}
}

// FuzzAddr: whatever the header holds, Addr never panics, an untrusted
// peer is always the client, and the client is the peer or one of the
// header's entries.
func FuzzAddr(f *testing.F) {
	f.Add("10.1.2.3:4000", "198.51.100.1, 10.0.0.1")
	f.Add("203.0.113.5:4000", "6.6.6.6")
	f.Add("[fd00::1]:1", "[2001:db8::7]:443,,, x")
	f.Add("10.0.0.1:1", "")
	r, err := NewResolver([]string{"10.0.0.0/8", "fd00::/8"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, remote, xff string) {
		req := request(remote, xff)
		a, ok := r.Addr(req)
		if !ok {
			return
		}
		peer, _ := Resolver{}.Addr(req)
		if !r.Trusts(peer) && a != peer {
			t.Fatalf("untrusted peer %v, client %v", peer, a)
		}
		if a == peer {
			return
		}
		for _, h := range forwardedFor([]string{xff}) {
			if p, ok := parseHop(h); ok && p == a {
				return
			}
		}
		t.Fatalf("client %v is neither the peer %v nor in %q", a, peer, xff)
	})
}
