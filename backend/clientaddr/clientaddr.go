// Package clientaddr says who a client is: the network address a request
// comes from. A socket or a request id is free to make, so limits and
// turns keyed by them are free to multiply; an address is not. Behind a
// reverse proxy every request comes from the proxy, so the address the
// proxy saw is taken from X-Forwarded-For — but only when the request
// comes from a proxy the operator trusts (--trusted-proxies), since any
// client can write that header.
//
// Addresses are keyed so that one household or host counts once: an IPv4
// address as it is, an IPv6 address by its /64 prefix (a host is usually
// given a whole /64 and can pick any address in it).
package clientaddr

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Resolver finds the client address of requests. The zero value trusts
// no proxy: the client is the connection's peer.
type Resolver struct {
	trusted []netip.Prefix
}

// NewResolver trusts the proxies in list, each a CIDR prefix
// (10.0.0.0/8, fd00::/8) or a single address (192.0.2.10).
func NewResolver(list []string) (Resolver, error) {
	var r Resolver
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		p, err := parsePrefix(s)
		if err != nil {
			return Resolver{}, err
		}
		r.trusted = append(r.trusted, p)
	}
	return r, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("trusted proxy %q is not a CIDR prefix like 10.0.0.0/8 or fd00::/8", s)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("trusted proxy %q is neither an address (192.0.2.10) nor a CIDR prefix (10.0.0.0/8)", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Trusts reports whether a is one of the trusted proxies.
func (r Resolver) Trusts(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range r.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Addr is the client address of req: its peer, or, when the peer is a
// trusted proxy, the address the proxies recorded in X-Forwarded-For,
// read from the right (nearest hop) and stopping at the first address
// that is not a trusted proxy — entries to its left were written by the
// client and prove nothing. A malformed entry stops the walk too: the
// last hop read is then the client. ok is false only when the peer
// address itself cannot be read (a listener that is not TCP).
func (r Resolver) Addr(req *http.Request) (a netip.Addr, ok bool) {
	ap, err := netip.ParseAddrPort(req.RemoteAddr)
	if err != nil {
		host, _, splitErr := net.SplitHostPort(req.RemoteAddr)
		if splitErr != nil {
			host = req.RemoteAddr
		}
		if a, err = netip.ParseAddr(host); err != nil {
			return netip.Addr{}, false
		}
	} else {
		a = ap.Addr()
	}
	a = a.Unmap().WithZone("")
	if len(r.trusted) == 0 || !r.Trusts(a) {
		return a, true
	}
	hops := forwardedFor(req.Header.Values("X-Forwarded-For"))
	for i := len(hops) - 1; i >= 0 && r.Trusts(a); i-- {
		h, ok := parseHop(hops[i])
		if !ok {
			break
		}
		a = h
	}
	return a, true
}

// Key is the client key of req (see KeyOf); requests whose peer cannot
// be read share the key "unknown".
func (r Resolver) Key(req *http.Request) string {
	a, ok := r.Addr(req)
	if !ok {
		return "unknown"
	}
	return KeyOf(a)
}

// KeyOf is the key an address counts under: an IPv4 address itself, an
// IPv6 address its /64 prefix.
func KeyOf(a netip.Addr) string {
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// forwardedFor splits X-Forwarded-For headers (several headers count as
// one list, in order) into their entries.
func forwardedFor(values []string) []string {
	var hops []string
	for _, v := range values {
		for _, h := range strings.Split(v, ",") {
			hops = append(hops, strings.TrimSpace(h))
		}
	}
	return hops
}

// parseHop reads one X-Forwarded-For entry: an address, optionally with a
// port (192.0.2.1:443, [2001:db8::1]:443).
func parseHop(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	return netip.Addr{}, false
}
