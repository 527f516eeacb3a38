package imap

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"
)

// selfSigned returns a TLS config with a fresh certificate for 127.0.0.1.
func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "imap.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// TestTLSModes: implicit TLS and STARTTLS connect and deliver; a
// certificate that does not verify is refused unless
// insecure_skip_verify is set.
func TestTLSModes(t *testing.T) {
	for _, mode := range []string{TLSImplicit, TLSStart} {
		t.Run(mode, func(t *testing.T) {
			srv := startMemServerTLS(t, selfSigned(t), mode == TLSImplicit)
			in := &testIntake{st: openStore(t, storePath(t))}
			bad := testConfig(t, srv.Addr())
			bad.TLS, bad.Folders.Sent = mode, SentNone
			rb := startNamed(t, "strict", bad, in.st, in)
			rb.waitState(t, 5*time.Second, StateBackoff)
			if st := rb.c.Status()[0]; !strings.Contains(st.LastError, "certificate") {
				t.Errorf("self-signed certificate accepted? %q", st.LastError)
			}
			rb.stop()

			cfg := testConfig(t, srv.Addr())
			cfg.TLS, cfg.InsecureSkipVerify, cfg.Folders.Sent = mode, true, SentNone
			r := startConnector(t, cfg, in.st, in)
			r.waitState(t, 5*time.Second, StateIdle)
			srv.Deliver(t, "INBOX", newMail("a@client.test", testUser, "x", "tls-"+mode+"@client.test"))
			in.waitEvents(t, 1, 5*time.Second)
		})
	}
}
