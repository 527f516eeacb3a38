// Package smtpserver starts an SMTP server for tests.
//
// Start runs a real one — Debian's python3-aiosmtpd, driven by
// testdata/smtpsink.py — on a free loopback port when a python3 that can
// import aiosmtpd is installed (.ci/run installs it). Otherwise it falls
// back to an in-process server built on github.com/emersion/go-smtp with
// the same behaviour, and says so in the test log; Real reports which one
// runs.
//
// Both write every accepted message to a directory and log every DATA
// attempt, and both answer by recipient: a local part starting with
// "permfail" is refused at RCPT with 550, one starting with "tempfail"
// gets 421 for the first DATA of each Message-ID and 250 after that, and
// one starting with "slowack" has its first DATA of each Message-ID stored
// at once but answered only after a minute.
//
// STAGEGATE_TEST_SMTP=go forces the stand-in (to test it).
package smtpserver

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Message is one accepted message.
type Message struct {
	From string   // MAIL FROM
	To   []string // RCPT TO
	Raw  []byte
}

// Header parses the message's header.
func (m Message) Header() mail.Header {
	msg, err := mail.ReadMessage(bytes.NewReader(m.Raw))
	if err != nil {
		return mail.Header{}
	}
	return msg.Header
}

// Attempt is one DATA attempt: the reply code sent and the Message-ID.
type Attempt struct {
	Code      string
	MessageID string
}

// Server is an SMTP server owned by one test.
type Server struct {
	Host string
	Port int
	dir  string
	real bool
	o    Options
}

// Options make the server speak TLS and require AUTH.
type Options struct {
	// TLS is "" (plain), "starttls" (offered, required before AUTH) or
	// "implicit"; the certificate is self-signed for 127.0.0.1.
	TLS string
	// Username and Password, when set, are required (AUTH PLAIN) before MAIL.
	Username, Password string
}

// Real reports whether the server is aiosmtpd (not the in-process stand-in).
func (s *Server) Real() bool { return s.real }

// Start starts a plain server for tb, stopped when tb ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	return StartWith(tb, Options{})
}

// StartWith starts a server with TLS and AUTH as o says.
func StartWith(tb testing.TB, o Options) *Server {
	tb.Helper()
	s := &Server{Host: "127.0.0.1", dir: tb.TempDir(), o: o}
	if py := python(); py != "" && os.Getenv("STAGEGATE_TEST_SMTP") != "go" {
		s.startPython(tb, py)
		s.real = true
		return s
	}
	tb.Log("smtpserver: python3-aiosmtpd is not installed (or STAGEGATE_TEST_SMTP=go): using an in-process go-smtp server instead")
	s.startGo(tb)
	return s
}

// python returns an interpreter that can import aiosmtpd (Debian's package
// installs it for /usr/bin/python3, which a pyenv python3 on PATH may hide).
func python() string {
	for _, p := range []string{"/usr/bin/python3", "python3"} {
		path, err := exec.LookPath(p)
		if err == nil && exec.Command(path, "-c", "import aiosmtpd").Run() == nil {
			return path
		}
	}
	return ""
}

func (s *Server) startPython(tb testing.TB, py string) {
	_, file, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(file), "testdata", "smtpsink.py")
	s.Port = freePort(tb)
	args := []string{script, s.Host, fmt.Sprint(s.Port), s.dir}
	if s.o.TLS != "" {
		cert, key := writeCert(tb, s.dir)
		args = append(args, s.o.TLS, cert, key)
		if s.o.Username != "" {
			args = append(args, s.o.Username, s.o.Password)
		}
	}
	cmd := exec.Command(py, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("smtpserver: start aiosmtpd: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	ready := make(chan bool, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		ready <- strings.TrimSpace(line) == "ready"
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case ok := <-ready:
		if !ok {
			tb.Fatal("smtpserver: aiosmtpd did not start")
		}
	case <-time.After(15 * time.Second):
		tb.Fatal("smtpserver: aiosmtpd did not start within 15s")
	}
	tb.Logf("smtpserver: aiosmtpd on %s:%d", s.Host, s.Port)
}

func freePort(tb testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// Messages returns the accepted messages, in order.
func (s *Server) Messages() []Message {
	files, _ := filepath.Glob(filepath.Join(s.dir, "*.eml"))
	slices.Sort(files)
	var out []Message
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var env struct {
			From string   `json:"mail_from"`
			To   []string `json:"rcpt_tos"`
		}
		if b, err := os.ReadFile(strings.TrimSuffix(f, ".eml") + ".json"); err == nil {
			_ = json.Unmarshal(b, &env)
		}
		out = append(out, Message{From: env.From, To: env.To, Raw: raw})
	}
	return out
}

// Attempts returns every DATA attempt, in order.
func (s *Server) Attempts() []Attempt {
	b, _ := os.ReadFile(filepath.Join(s.dir, "attempts.log"))
	var out []Attempt
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if code, mid, ok := strings.Cut(line, " "); ok {
			out = append(out, Attempt{Code: code, MessageID: mid})
		}
	}
	return out
}

// startGo runs the in-process stand-in.
func (s *Server) startGo(tb testing.TB) {
	be := &backend{dir: s.dir, seen: map[string]int{}}
	srv := smtp.NewServer(be)
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = s.o.TLS == ""
	ln, err := net.Listen("tcp", net.JoinHostPort(s.Host, "0"))
	if err != nil {
		tb.Fatal(err)
	}
	if s.o.TLS != "" {
		certFile, keyFile := writeCert(tb, s.dir)
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			tb.Fatal(err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}}
		if s.o.TLS == "implicit" {
			ln = tls.NewListener(ln, srv.TLSConfig)
		}
	}
	be.user, be.password = s.o.Username, s.o.Password
	s.Port = ln.Addr().(*net.TCPAddr).Port
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() { srv.Close() })
}

type backend struct {
	dir            string
	user, password string
	mu             sync.Mutex
	n              int
	seen           map[string]int
}

func (b *backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{b: b}, nil }

type session struct {
	b      *backend
	authed bool
	from   string
	to     []string
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, password string) error {
		if user != s.b.user || password != s.b.password {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
		}
		s.authed = true
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.b.user != "" && !s.authed {
		return smtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if strings.HasPrefix(strings.ToLower(to), "permfail") {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1},
			Message: "<" + to + ">: Recipient address rejected: User unknown in local recipient table"}
	}
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	var mid string
	if m, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil {
		mid = m.Header.Get("Message-Id")
	}
	b := s.b
	b.mu.Lock()
	defer b.mu.Unlock()
	tries := b.seen[mid]
	b.seen[mid]++
	if tries == 0 && slices.ContainsFunc(s.to, func(t string) bool { return strings.HasPrefix(strings.ToLower(t), "tempfail") }) {
		b.attempt("421", mid)
		return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "Service shutting down, try again later"}
	}
	b.n++
	base := filepath.Join(b.dir, fmt.Sprintf("%04d", b.n))
	env, _ := json.Marshal(map[string]any{"mail_from": s.from, "rcpt_tos": s.to})
	err = errors.Join(os.WriteFile(base+".json", env, 0o600), os.WriteFile(base+".eml", raw, 0o600))
	b.attempt("250", mid)
	if tries == 0 && slices.ContainsFunc(s.to, func(t string) bool { return strings.HasPrefix(strings.ToLower(t), "slowack") }) {
		b.mu.Unlock()
		time.Sleep(time.Minute)
		b.mu.Lock()
	}
	return err
}

func (b *backend) attempt(code, mid string) {
	f, err := os.OpenFile(filepath.Join(b.dir, "attempts.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err == nil {
		fmt.Fprintf(f, "%s %s\n", code, mid)
		f.Close()
	}
}

func (s *session) Reset() { s.from, s.to = "", nil }

// writeCert writes a self-signed certificate for 127.0.0.1 and its key.
func writeCert(tb testing.TB, dir string) (certFile, keyFile string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	err = errors.Join(
		os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600),
		os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600))
	if err != nil {
		tb.Fatal(err)
	}
	return certFile, keyFile
}
func (s *session) Logout() error { return nil }
