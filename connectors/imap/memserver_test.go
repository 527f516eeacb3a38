package imap

import (
	"bytes"
	"crypto/tls"
	"io"
	"log"
	"net"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// memServer is go-imap's imapmemserver on a loopback port.
type memServer struct {
	addr        string
	user        *imapmemserver.User
	implicitTLS bool
	mu          sync.Mutex
	poison      map[imap.UID]bool // UIDs whose FETCH the server refuses (NO)
	killers     map[imap.UID]bool // UIDs whose FETCH makes the server hang up (BYE)
}

// kill makes the server say BYE and hang up, sending nothing, on any UID
// FETCH that names uid (as Dovecot does when it cannot read a mail file).
func (s *memServer) kill(uid imap.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.killers == nil {
		s.killers = map[imap.UID]bool{}
	}
	s.killers[uid] = true
}

// refuse makes the server answer NO to any UID FETCH that names uid.
func (s *memServer) refuse(uid imap.UID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.poison == nil {
		s.poison = map[imap.UID]bool{}
	}
	s.poison[uid] = true
}

// session is a memory server session that can refuse some fetches.
type session struct {
	imapserver.Session
	srv  *memServer
	conn *imapserver.Conn
}

func (s session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	if uids, ok := numSet.(imap.UIDSet); ok {
		s.srv.mu.Lock()
		defer s.srv.mu.Unlock()
		for uid := range s.srv.poison {
			if uids.Contains(uid) {
				return &imap.Error{Type: imap.StatusResponseTypeNo, Text: "Internal error: broken mail file"}
			}
		}
		for uid := range s.srv.killers {
			if uids.Contains(uid) {
				_ = s.conn.Bye("Internal error occurred. Refer to server log for more information.")
				_ = s.conn.NetConn().Close()
				return &imap.Error{Type: imap.StatusResponseTypeBye, Text: "Internal error"}
			}
		}
	}
	return s.Session.Fetch(w, numSet, options)
}

func startMemServer(t testing.TB) *memServer {
	t.Helper()
	return startMemServerTLS(t, nil, false)
}

// startMemServerTLS starts the memory server with TLS: implicit TLS on
// the listener (implicit), or STARTTLS.
func startMemServerTLS(t testing.TB, cfg *tls.Config, implicit bool) *memServer {
	t.Helper()
	mem := imapmemserver.New()
	user := imapmemserver.NewUser(testUser, testPassword)
	for _, f := range []string{"INBOX", "Sent", "Support"} {
		if err := user.Create(f, nil); err != nil {
			t.Fatal(err)
		}
	}
	mem.AddUser(user)
	ms := &memServer{user: user, implicitTLS: implicit}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(c *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return session{Session: mem.NewSession(), srv: ms, conn: c}, nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}},
		InsecureAuth: true,
		TLSConfig:    cfg,
		Logger:       log.New(io.Discard, "", 0),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if implicit {
		ln = tls.NewListener(ln, cfg)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	ms.addr = ln.Addr().String()
	return ms
}

func (s *memServer) Name() string { return "memserver" }
func (s *memServer) Addr() string { return s.addr }
func (s *memServer) User() string { return testUser }

func (s *memServer) Deliver(t testing.TB, folder string, raw []byte) {
	t.Helper()
	if s.implicitTLS {
		// The test client speaks plain IMAP: put the mail in directly.
		if _, err := s.user.Append(folder, literal{bytes.NewReader(raw)}, &imap.AppendOptions{}); err != nil {
			t.Fatal(err)
		}
		return
	}
	appendMail(t, s.addr, testUser, folder, raw)
}

// literal is an imap.LiteralReader over bytes.
type literal struct{ *bytes.Reader }

func (l literal) Size() int64 { return l.Reader.Size() }

func (s *memServer) Recreate(t testing.TB, folder string) {
	t.Helper()
	if err := s.user.Delete(folder); err != nil {
		t.Fatal(err)
	}
	if err := s.user.Create(folder, nil); err != nil {
		t.Fatal(err)
	}
}
