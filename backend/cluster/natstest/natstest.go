// Package natstest starts a secured NATS JetStream server on loopback for
// tests: TLS only, client certificates verified, and users with their own
// publish and subscribe permissions — listed by public nkey (Start), or
// issued as user JWTs by a trusted operator and presented with a
// credentials file (StartOperator). The certificate authority,
// certificates, keys and JWTs are made for each server and thrown away
// with the test's temporary folder.
package natstest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"
)

// User is a NATS user the server admits.
type User struct {
	Name string
	// Publish and Subscribe are the subjects the user may use (NATS
	// wildcards allowed); nothing else is allowed.
	Publish, Subscribe []string
}

// Server is a running secured NATS server.
type Server struct {
	// URL is where clients connect (tls://127.0.0.1:port).
	URL string
	// CA is the PEM file of the authority that signed the server's and
	// the client's certificates; ClientCert and ClientKey a client
	// certificate the server accepts.
	CA, ClientCert, ClientKey string
	// Seeds maps each user's name to a file holding its nkey seed
	// (Start); Creds to its credentials file (StartOperator).
	Seeds, Creds map[string]string
}

// Start starts a server admitting users by their nkeys and stops it when
// the test ends.
func Start(t testing.TB, users ...User) *Server {
	t.Helper()
	dir := t.TempDir()
	s := &Server{Seeds: map[string]string{}, Creds: map[string]string{}}
	var nkeyUsers []*natsserver.NkeyUser
	for _, u := range users {
		kp, err := nkeys.CreateUser()
		check(t, err)
		seed, err := kp.Seed()
		check(t, err)
		public, err := kp.PublicKey()
		check(t, err)
		s.Seeds[u.Name] = filepath.Join(dir, u.Name+".nk")
		check(t, os.WriteFile(s.Seeds[u.Name], seed, 0o600))
		nkeyUsers = append(nkeyUsers, &natsserver.NkeyUser{Nkey: public, Permissions: &natsserver.Permissions{
			Publish:   &natsserver.SubjectPermission{Allow: u.Publish},
			Subscribe: &natsserver.SubjectPermission{Allow: u.Subscribe},
		}})
	}
	s.start(t, dir, &natsserver.Options{Nkeys: nkeyUsers})
	return s
}

// StartOperator starts a server in operator mode — users are JWTs issued
// by an account of an operator the server trusts, with JetStream enabled
// for that account — and writes each user's credentials file.
func StartOperator(t testing.TB, users ...User) *Server {
	t.Helper()
	dir := t.TempDir()
	s := &Server{Seeds: map[string]string{}, Creds: map[string]string{}}
	operator, err := nkeys.CreateOperator()
	check(t, err)
	opPub, err := operator.PublicKey()
	check(t, err)
	opClaims := jwt.NewOperatorClaims(opPub)
	opJWT, err := opClaims.Encode(operator)
	check(t, err)
	opClaims, err = jwt.DecodeOperatorClaims(opJWT)
	check(t, err)
	account, err := nkeys.CreateAccount()
	check(t, err)
	accPub, err := account.PublicKey()
	check(t, err)
	accClaims := jwt.NewAccountClaims(accPub)
	accClaims.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	accJWT, err := accClaims.Encode(operator)
	check(t, err)
	resolver := &natsserver.MemAccResolver{}
	check(t, resolver.Store(accPub, accJWT))
	// JetStream needs the operator's system account.
	system, err := nkeys.CreateAccount()
	check(t, err)
	sysPub, err := system.PublicKey()
	check(t, err)
	sysJWT, err := jwt.NewAccountClaims(sysPub).Encode(operator)
	check(t, err)
	check(t, resolver.Store(sysPub, sysJWT))
	for _, u := range users {
		kp, err := nkeys.CreateUser()
		check(t, err)
		seed, err := kp.Seed()
		check(t, err)
		public, err := kp.PublicKey()
		check(t, err)
		claims := jwt.NewUserClaims(public)
		claims.IssuerAccount = accPub
		claims.Permissions.Pub.Allow.Add(u.Publish...)
		claims.Permissions.Sub.Allow.Add(u.Subscribe...)
		userJWT, err := claims.Encode(account)
		check(t, err)
		creds, err := jwt.FormatUserConfig(userJWT, seed)
		check(t, err)
		s.Creds[u.Name] = filepath.Join(dir, u.Name+".creds")
		check(t, os.WriteFile(s.Creds[u.Name], creds, 0o600))
	}
	s.start(t, dir, &natsserver.Options{TrustedOperators: []*jwt.OperatorClaims{opClaims}, AccountResolver: resolver, SystemAccount: sysPub})
	return s
}

// start completes opts with JetStream and TLS on loopback and starts the
// server.
func (s *Server) start(t testing.TB, dir string, opts *natsserver.Options) {
	t.Helper()
	serverCert, serverKey := s.makePKI(t, dir)
	tlsCfg, err := natsserver.GenTLSConfig(&natsserver.TLSConfigOpts{CertFile: serverCert, KeyFile: serverKey, CaFile: s.CA, Verify: true})
	check(t, err)
	opts.Host, opts.Port = "127.0.0.1", natsserver.RANDOM_PORT
	opts.JetStream, opts.StoreDir = true, filepath.Join(dir, "jetstream")
	opts.NoSigs, opts.NoLog = true, true
	opts.TLS, opts.TLSVerify, opts.TLSConfig, opts.TLSTimeout = true, true, tlsCfg, 5
	srv, err := natsserver.NewServer(opts)
	check(t, err)
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("natstest: the secured NATS server did not start within 10 s")
	}
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	s.URL = srv.ClientURL()
}

// makePKI writes a certificate authority, a server certificate for
// 127.0.0.1 and a client certificate, and returns the server's files.
func (s *Server) makePKI(t testing.TB, dir string) (serverCert, serverKey string) {
	t.Helper()
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		check(t, os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
		return path
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	check(t, err)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "natstest CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	check(t, err)
	caCert, err := x509.ParseCertificate(caDER)
	check(t, err)
	s.CA = write("ca.pem", "CERTIFICATE", caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (cert, key string) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		check(t, err)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		check(t, err)
		kder, err := x509.MarshalECPrivateKey(k)
		check(t, err)
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", kder)
	}
	serverCert, serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	s.ClientCert, s.ClientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return serverCert, serverKey
}

// UnknownSeed writes the seed of an nkey user the server does not know.
func UnknownSeed(t testing.TB) string {
	t.Helper()
	kp, err := nkeys.CreateUser()
	check(t, err)
	seed, err := kp.Seed()
	check(t, err)
	path := filepath.Join(t.TempDir(), "stranger.nk")
	check(t, os.WriteFile(path, seed, 0o600))
	return path
}

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
