package imap

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/normalize"
	"github.com/stagegate/stagegate/store"
	"github.com/stagegate/stagegate/store/bolt"
)

const (
	testUser     = "sales@acme.test"
	testPassword = "secret"
)

// mailServer is an IMAP server the tests deliver mail to: go-imap's
// in-process memory server, or a real Dovecot (dovecot_test.go).
type mailServer interface {
	Name() string
	Addr() string
	// User is the account the test logs in as (password testPassword).
	User() string
	// Deliver puts raw into folder (IMAP APPEND, or doveadm save).
	Deliver(t testing.TB, folder string, raw []byte)
	// Recreate deletes folder and creates it again (a new UIDVALIDITY).
	Recreate(t testing.TB, folder string)
}

// client logs in to addr as user with a plain IMAP client.
func client(t testing.TB, addr, user string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(user, testPassword).Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

// appendMail delivers raw with IMAP APPEND.
func appendMail(t testing.TB, addr, user, folder string, raw []byte) {
	t.Helper()
	c := client(t, addr, user)
	defer c.Close()
	cmd := c.Append(folder, int64(len(raw)), nil)
	if _, err := cmd.Write(raw); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.Wait(); err != nil {
		t.Fatalf("append to %s: %v", folder, err)
	}
}

// folderState lists "uid:flags" of every mail of folder, read with EXAMINE
// and FLAGS only, so that looking does not change anything.
func folderFlags(t testing.TB, srv mailServer, folder string) []string {
	t.Helper()
	c := client(t, srv.Addr(), srv.User())
	defer c.Close()
	sel, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages == 0 {
		return nil
	}
	bufs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range bufs {
		var fl []string
		for _, f := range b.Flags {
			if f != "\\Recent" {
				fl = append(fl, string(f))
			}
		}
		slices.Sort(fl)
		out = append(out, fmt.Sprintf("%d:%s", b.UID, strings.Join(fl, ",")))
	}
	return out
}

// testIntake records events in a real store's log (its dedup is the real
// one) and keeps the new ones for the test to look at.
type testIntake struct {
	st store.Store

	mu     sync.Mutex
	down   bool
	events []*normalize.Event
	dups   int
	calls  int
}

func (in *testIntake) Submit(ctx context.Context, ev *normalize.Event) (connectors.Result, error) {
	in.mu.Lock()
	in.calls++
	down := in.down
	in.mu.Unlock()
	if down {
		return connectors.Result{}, fmt.Errorf("test store: %w", connectors.ErrUnavailable)
	}
	res, err := in.st.Append(ctx, ev)
	if err != nil {
		return connectors.Result{}, fmt.Errorf("%w: %w", connectors.ErrUnavailable, err)
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if res.Duplicate {
		in.dups++
	} else {
		in.events = append(in.events, ev)
	}
	return connectors.Result{EventID: ev.ID, Duplicate: res.Duplicate}, nil
}

func (in *testIntake) Reject(string, string) {}

func (in *testIntake) setDown(down bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.down = down
}

// Events returns the new events recorded so far.
func (in *testIntake) Events() []*normalize.Event {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.events)
}

func (in *testIntake) Dups() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.dups
}

// waitEvents waits until n new events are recorded and returns them.
func (in *testIntake) waitEvents(t testing.TB, n int, timeout time.Duration) []*normalize.Event {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		evs := in.Events()
		if len(evs) >= n {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events after %v, want %d: %v", len(evs), timeout, n, eventIDs(evs))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func eventIDs(evs []*normalize.Event) []string {
	ids := make([]string, len(evs))
	for i, e := range evs {
		ids[i] = e.ID
	}
	return ids
}

// openStore opens a bolt store at path (a file in a test's temp dir).
func openStore(t testing.TB, path string) *bolt.Store {
	t.Helper()
	st, err := bolt.Open(store.Config{Path: path, DedupWindow: store.DefaultDedupWindow}, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// testConfig is a config for the test user at addr, with short timings.
func testConfig(t testing.TB, addr string) *Config {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	cfg := NewConfig()
	cfg.Host, cfg.TLS, cfg.Username, cfg.Password = host, TLSNone, testUser, testPassword
	cfg.Port, _ = strconv.Atoi(port)
	cfg.Folders.Sent = "Sent"
	cfg.OwnAddresses = []string{"acme.test"}
	cfg.ReconnectMin, cfg.ReconnectMax = 20*time.Millisecond, 300*time.Millisecond
	cfg.PollInterval, cfg.CommandTimeout = 50*time.Millisecond, 5*time.Second
	// The memory server may miss announcing mail that arrives just
	// before IDLE starts; the periodic re-check finds it.
	cfg.IdleRefresh = time.Second
	return cfg
}

// serverConfig is testConfig for srv's user, connecting to addr (srv's
// address, or a proxy's).
func serverConfig(t testing.TB, srv mailServer, addr string) *Config {
	cfg := testConfig(t, addr)
	cfg.Username = srv.User()
	return cfg
}

// running is a connector running in the background.
type running struct {
	c      *Connector
	cancel context.CancelFunc
	done   chan struct{}
}

// startConnector builds and runs a connector named "mail"; it stops at
// the end of the test or with stop.
func startConnector(t testing.TB, cfg *Config, rec store.Records, in connectors.Intake, tweak ...func(*Connector)) *running {
	t.Helper()
	return startNamed(t, "mail", cfg, rec, in, tweak...)
}

// startNamed is startConnector with another connector name; tweak
// changes the connector before it runs.
func startNamed(t testing.TB, name string, cfg *Config, rec store.Records, in connectors.Intake, tweak ...func(*Connector)) *running {
	t.Helper()
	if errs := cfg.Validate(); len(errs) > 0 {
		t.Fatalf("config: %v", errs)
	}
	logger := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	c, err := New(connectors.Base{Name: name, Type: "imap"}, cfg, connectors.Deps{
		Logger: logger.With("connector", name), Intake: in, Records: rec, Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	c.leaseTTL, c.leaseRenew = 5*time.Second, time.Second
	for _, f := range tweak {
		f(c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{c: c, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		if err := c.Run(ctx); err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	t.Cleanup(r.stop)
	return r
}

func (r *running) stop() {
	r.cancel()
	<-r.done
}

// waitState waits until every folder of r is in one of states.
func (r *running) waitState(t testing.TB, timeout time.Duration, states ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		all := true
		for _, f := range r.c.Status() {
			all = all && slices.Contains(states, f.State)
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("folders not %v after %v: %+v", states, timeout, r.c.Status())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testWriter sends log lines to t.Log while the test runs.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	if os.Getenv("IMAP_TEST_LOG") != "" {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// newMail builds a small mail.
func newMail(from, to, subject, msgID string, extra ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\n", from, to, subject, time.Now().Format(time.RFC1123Z))
	if msgID != "" {
		fmt.Fprintf(&b, "Message-ID: <%s>\r\n", msgID)
	}
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Content-Type: text/plain; charset=utf-8\r\n\r\nHello from " + from + ".\r\n")
	return []byte(b.String())
}

// storePath returns a fresh bolt path in the test's temp dir.
func storePath(t testing.TB) string { return filepath.Join(t.TempDir(), "sg.db") }
