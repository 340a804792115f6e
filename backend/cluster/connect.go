package cluster

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
)

// A NATS that anyone can reach lets anyone inject jobs, forge results,
// cancel or purge. A deployment's NATS therefore requires credentials and
// TLS, and gives each role only the subjects it needs (permissions.go);
// Credentials are how a gateway or worker presents itself.

// Credentials identify a gateway or worker to a NATS that requires it,
// and set the TLS it speaks. The zero value connects as an anonymous
// client, in plain text unless the URLs say tls://.
type Credentials struct {
	// CredsFile is a NATS credentials file: a user JWT and its nkey seed,
	// as nsc writes them (operator mode).
	CredsFile string
	// NKeyFile holds a user's nkey seed (a line starting SU), for a
	// server that lists its users' public nkeys.
	NKeyFile string
	// TLSCA is a PEM file of the certificate authorities the servers'
	// certificates must chain to (default: the system's).
	TLSCA string
	// TLSCert and TLSKey are a PEM client certificate and its key, for
	// servers that verify their clients.
	TLSCert, TLSKey string
}

// options checks the files and turns them into connection options.
func (c Credentials) options() ([]nats.Option, error) {
	var opts []nats.Option
	switch {
	case c.CredsFile != "" && c.NKeyFile != "":
		return nil, errors.New("give a credentials file or an nkey seed file, not both")
	case (c.TLSCert == "") != (c.TLSKey == ""):
		return nil, errors.New("a TLS client certificate needs its key, and a key its certificate")
	}
	for _, f := range []struct{ what, path string }{
		{"credentials file", c.CredsFile}, {"nkey seed file", c.NKeyFile},
		{"TLS CA file", c.TLSCA}, {"TLS certificate", c.TLSCert}, {"TLS key", c.TLSKey},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return nil, fmt.Errorf("the NATS %s: %w", f.what, err)
		}
	}
	if c.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(c.CredsFile))
	}
	if c.NKeyFile != "" {
		o, err := nats.NkeyOptionFromSeed(c.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("the NATS nkey seed file %s: %w", c.NKeyFile, err)
		}
		opts = append(opts, o)
	}
	if c.TLSCA != "" {
		opts = append(opts, nats.RootCAs(c.TLSCA))
	}
	if c.TLSCert != "" {
		opts = append(opts, nats.ClientCert(c.TLSCert, c.TLSKey))
	}
	return opts, nil
}

// Connect connects to the NATS servers urls (comma-separated) as name,
// presenting c, reconnecting for ever once connected. Its errors never
// show a password or token written in the URLs.
func Connect(urls, name string, c Credentials, extra ...nats.Option) (*nats.Conn, error) {
	opts, err := c.options()
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	opts = append(append([]nats.Option{nats.Name(name), nats.MaxReconnects(-1)}, opts...), extra...)
	nc, err := nats.Connect(urls, opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to NATS at %s: %w", RedactURLs(urls), redactError(err, urls))
	}
	return nc, nil
}

// RedactURLs hides the secrets of NATS URLs (comma-separated): a
// password becomes xxxxx, and so does a user without a password, which
// NATS reads as a token.
func RedactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, u := range parts {
		parts[i] = redactURL(strings.TrimSpace(u))
	}
	return strings.Join(parts, ",")
}

func redactURL(u string) string {
	rest := u
	scheme := ""
	if i := strings.Index(u, "://"); i >= 0 {
		scheme, rest = u[:i+3], u[i+3:]
	}
	host := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		host = rest[:i]
	}
	at := strings.LastIndex(host, "@")
	if at < 0 {
		return u
	}
	user, _, hasPassword := strings.Cut(host[:at], ":")
	if !hasPassword {
		user = ""
	} else {
		user += ":"
	}
	return scheme + user + "xxxxx" + rest[at:]
}

// redactError removes, from an error of the NATS client, any secret of
// urls it repeats.
func redactError(err error, urls string) error {
	msg := err.Error()
	redacted := msg
	for _, u := range strings.Split(urls, ",") {
		u = strings.TrimSpace(u)
		if r := redactURL(u); r != u {
			redacted = strings.ReplaceAll(redacted, u, r)
		}
	}
	if redacted == msg {
		return err
	}
	return errors.New(redacted)
}
