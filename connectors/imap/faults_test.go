package imap

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stagegate/stagegate/internal/testutil/redisserver"
	"github.com/stagegate/stagegate/store"
	"github.com/stagegate/stagegate/store/redis"
)

// TestStoreDown: while the store refuses events the cursor does not move;
// once it is back every mail is recorded.
func TestStoreDown(t *testing.T) {
	srv := startMemServer(t)
	in := &testIntake{st: openStore(t, storePath(t))}
	cfg := testConfig(t, srv.Addr())
	cfg.Folders.Sent = SentNone
	r := startConnector(t, cfg, in.st, in)
	r.waitState(t, 5*time.Second, StateIdle)
	in.setDown(true)
	srv.Deliver(t, "INBOX", newMail("a@client.test", testUser, "x", "down-1@client.test"))
	srv.Deliver(t, "INBOX", newMail("b@client.test", testUser, "y", "down-2@client.test"))
	r.waitState(t, 5*time.Second, StateBackoff)
	if st := r.c.Status()[0]; !strings.Contains(st.LastError, "unavailable") || st.LastUID != 0 || st.OK {
		t.Errorf("status while the store is down: %+v", st)
	}
	in.setDown(false)
	in.waitEvents(t, 2, 5*time.Second)
	checkOnce(t, in)
}

// TestBrokenAccount: an account with a wrong password keeps retrying and
// shows its error, while another account works.
func TestBrokenAccount(t *testing.T) {
	srv := startMemServer(t)
	st := openStore(t, storePath(t))
	good, bad := &testIntake{st: st}, &testIntake{st: st}
	cfg := testConfig(t, srv.Addr())
	cfg.Folders.Sent = SentNone
	rg := startConnector(t, cfg, st, good)
	badCfg := testConfig(t, srv.Addr())
	badCfg.Folders.Sent, badCfg.Password = SentNone, "wrong"
	rb := startNamed(t, "other", badCfg, st, bad)
	rg.waitState(t, 5*time.Second, StateIdle)
	srv.Deliver(t, "INBOX", newMail("a@client.test", testUser, "x", "good-1@client.test"))
	good.waitEvents(t, 1, 5*time.Second)
	rb.waitState(t, 5*time.Second, StateBackoff)
	ok, _ := rb.c.Health()
	if folders := rb.c.Status(); ok || !strings.Contains(folders[0].LastError, "login") || folders[0].Counters.Failures == 0 {
		t.Errorf("broken account health: %v %+v", ok, folders)
	}
	if ok, _ := rg.c.Health(); !ok {
		t.Errorf("the good account is not healthy: %+v", rg.c.Status())
	}
}

// TestDeadConnection: a link that stops answering without closing (a
// dead NAT entry) is noticed within the IDLE refresh plus the command
// timeout, and the connector reconnects and catches up.
func TestDeadConnection(t *testing.T) {
	srv := startMemServer(t)
	p := startProxy(t, srv.Addr())
	in := &testIntake{st: openStore(t, storePath(t))}
	cfg := testConfig(t, p.Addr())
	cfg.Folders.Sent = SentNone
	cfg.IdleRefresh, cfg.CommandTimeout = 200*time.Millisecond, 300*time.Millisecond
	r := startConnector(t, cfg, in.st, in)
	r.waitState(t, 5*time.Second, StateIdle)
	p.freeze(true)
	srv.Deliver(t, "INBOX", newMail("a@client.test", testUser, "x", "dead-1@client.test"))
	r.waitState(t, 5*time.Second, StateBackoff, StateConnecting)
	if st := r.c.Status()[0]; !strings.Contains(st.LastError, "no answer") {
		t.Errorf("last error %q", st.LastError)
	}
	p.freeze(false)
	p.cutAll()
	in.waitEvents(t, 1, 10*time.Second)
}

// TestLease: two gateways on one Redis (two stores, as two gateway
// processes have) watch each folder one at a time; when the holder dies
// without letting go, the other takes over once the lease expires, and
// nothing is recorded twice. A bolt file is opened by one process only:
// there folders are not leased (TestBoltRestartNoLeaseWait).
func TestLease(t *testing.T) {
	srv := redisserver.Start(t)
	open := func() *redis.Store {
		st, err := redis.Open(context.Background(), store.Config{Driver: "redis", URL: srv.URL(), Prefix: "lease-test",
			DedupWindow: store.DefaultDedupWindow, ClaimAfter: store.DefaultClaimAfter}, redis.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	testLease(t, open(), open())
}

// TestBoltRestartNoLeaseWait: a gateway on bolt restarted after a crash
// (its lease records left behind, with the default 45 s TTL) watches its
// folders at once: on a store one process owns there is nobody to wait
// for.
func TestBoltRestartNoLeaseWait(t *testing.T) {
	srv := startMemServer(t)
	path := storePath(t)
	st := openStore(t, path)
	in := &testIntake{st: st}
	cfg := testConfig(t, srv.Addr())
	cfg.Folders.Sent = SentNone
	defaults := func(c *Connector) { c.leaseTTL, c.leaseRenew = defaultLeaseTTL, defaultLeaseRenew }
	r := startConnector(t, cfg, st, in, defaults)
	r.waitState(t, 5*time.Second, StateIdle)
	srv.Deliver(t, "INBOX", newMail("a@client.test", testUser, "x", "crash-1@client.test"))
	in.waitEvents(t, 1, 5*time.Second)
	r.c.keepLease.Store(true) // a crash: nothing is released
	r.stop()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	st = openStore(t, path)
	t.Cleanup(func() { st.Close() })
	in2 := &testIntake{st: st}
	start := time.Now()
	r = startConnector(t, cfg, st, in2, defaults)
	r.waitState(t, 3*time.Second, StateIdle)
	t.Logf("watching again %v after the restart", time.Since(start).Round(time.Millisecond))
	srv.Deliver(t, "INBOX", newMail("a@client.test", testUser, "y", "crash-2@client.test"))
	if got := eventIDs(in2.waitEvents(t, 1, 5*time.Second)); !slices.Equal(got, []string{"mail:crash-2@client.test"}) {
		t.Errorf("events after the restart %v", got)
	}
}

func testLease(t *testing.T, st1, st2 store.Store) {
	srv := startMemServer(t)
	in1, in2 := &testIntake{st: st1}, &testIntake{st: st2}
	cfg := testConfig(t, srv.Addr())
	cfg.Folders.Sent = SentNone
	short := func(c *Connector) { c.leaseTTL, c.leaseRenew = 600*time.Millisecond, 150*time.Millisecond }
	a := startConnector(t, cfg, st1.(store.Records), in1, short)
	a.waitState(t, 5*time.Second, StateIdle)
	b := startConnector(t, cfg, st2.(store.Records), in2, short)
	b.waitState(t, 5*time.Second, StateWaitingLease)
	srv.Deliver(t, "INBOX", newMail("a@client.test", testUser, "x", "lease-1@client.test"))
	in1.waitEvents(t, 1, 5*time.Second)
	// Crash once a has moved its cursor past the mail (a crash between the
	// submit and the cursor write makes b fetch it again, which the intake
	// answers as a duplicate: allowed, but not what this test is about).
	waitCursor(t, st1.(store.Records), a.c.key("cursor", "INBOX"), 1)

	a.c.keepLease.Store(true) // a crash: the lease is not released, it must expire
	a.stop()
	start := time.Now()
	b.waitState(t, 5*time.Second, StateIdle)
	t.Logf("takeover after %v (lease ttl %v)", time.Since(start).Round(time.Millisecond), b.c.leaseTTL)
	srv.Deliver(t, "INBOX", newMail("a@client.test", testUser, "y", "lease-2@client.test"))
	in2.waitEvents(t, 1, 5*time.Second)
	waitCursor(t, st2.(store.Records), b.c.key("cursor", "INBOX"), 2) // b is done with both mails
	all := append(eventIDs(in1.Events()), eventIDs(in2.Events())...)
	if !slices.Equal(all, []string{"mail:lease-1@client.test", "mail:lease-2@client.test"}) || in1.Dups()+in2.Dups() != 0 {
		t.Errorf("events %v, %d duplicates", all, in1.Dups()+in2.Dups())
	}
}

// TestReplyLink: a mail in the sent folder that answers a message we know
// gets its own Message-ID tied to the same item, so the customer's reply
// to it routes to that item.
func TestReplyLink(t *testing.T) {
	srv := startMemServer(t)
	st := openStore(t, storePath(t))
	in := &testIntake{st: st}
	ctx := context.Background()
	if err := store.PutMessageRef(ctx, st, "offer-1@acme.test", store.MessageRef{ItemID: "i_42", Source: "tracking"}, 0); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, srv.Addr())
	r := startConnector(t, cfg, st, in)
	r.waitState(t, 5*time.Second, StateIdle)
	srv.Deliver(t, "Sent", newMail("bob@acme.test", "ann@client.test", "Re: offer", "re-2@acme.test",
		"In-Reply-To: <CAx@client.test>", "References: <offer-1@acme.test> <CAx@client.test>"))
	in.waitEvents(t, 1, 5*time.Second)
	ref, err := store.GetMessageRef(ctx, st, "<re-2@acme.test>")
	if err != nil || ref.ItemID != "i_42" || ref.Source != "imap/mail" {
		t.Fatalf("reply link: %+v, %v", ref, err)
	}
}

// TestBackfill: start: 7d takes the mail already in the folder.
func TestBackfill(t *testing.T) {
	srv := startMemServer(t)
	for i := range 3 {
		srv.Deliver(t, "INBOX", newMail("a@client.test", testUser, "old", fmt.Sprintf("bf-%d@client.test", i)))
	}
	in := &testIntake{st: openStore(t, storePath(t))}
	cfg := testConfig(t, srv.Addr())
	cfg.Folders.Sent, cfg.Start = SentNone, "7d"
	startConnector(t, cfg, in.st, in)
	in.waitEvents(t, 3, 5*time.Second)
}

// TestPollOneRoundTrip: without IDLE, a poll that finds nothing is one
// command on the wire.
func TestPollOneRoundTrip(t *testing.T) {
	srv := startMemServer(t)
	p := startProxy(t, srv.Addr())
	in := &testIntake{st: openStore(t, storePath(t))}
	cfg := testConfig(t, p.Addr())
	cfg.Folders.Sent, cfg.Mode, cfg.PollInterval = SentNone, ModePoll, 10*time.Millisecond
	r := startConnector(t, cfg, in.st, in)
	r.waitState(t, 5*time.Second, StatePolling)
	time.Sleep(50 * time.Millisecond)
	lines0, polls0 := p.lines.Load(), r.c.Status()[0].Counters.Polls
	time.Sleep(500 * time.Millisecond)
	lines1, polls1 := p.lines.Load(), r.c.Status()[0].Counters.Polls
	polls, lines := polls1-polls0, lines1-lines0
	if polls < 10 || lines < polls-1 || lines > polls+1 {
		t.Fatalf("%d polls sent %d commands; want one each", polls, lines)
	}
	t.Logf("%d polls, %d commands: %.2f round trips per poll", polls, lines, float64(lines)/float64(polls))
	srv.Deliver(t, "INBOX", newMail("a@client.test", testUser, "x", "poll-1@client.test"))
	in.waitEvents(t, 1, 5*time.Second)
}

// TestQuarantine: a mail the server refuses to FETCH is retried alone,
// then quarantined; the mails around it are recorded, the cursor moves
// on, and the API lists the quarantined mail.
func TestQuarantine(t *testing.T) {
	srv := startMemServer(t)
	for i := range 3 {
		srv.Deliver(t, "INBOX", newMail("a@client.test", testUser, "x", fmt.Sprintf("q-%d@client.test", i)))
	}
	srv.refuse(2)
	in := &testIntake{st: openStore(t, storePath(t))}
	cfg := testConfig(t, srv.Addr())
	cfg.Folders.Sent, cfg.Start = SentNone, "1d"
	r := startConnector(t, cfg, in.st, in)
	r.waitState(t, 5*time.Second, StateIdle)
	if got := eventIDs(in.Events()); !slices.Equal(got, []string{"mail:q-0@client.test", "mail:q-2@client.test"}) {
		t.Errorf("events %v", got)
	}
	st := r.c.Status()[0]
	if st.Counters.Quarantined != 1 || st.LastUID != 3 {
		t.Errorf("status %+v", st)
	}
	mux := http.NewServeMux()
	r.c.APIRoutes(mux)
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("GET", "/api/v1/imap/mail/quarantine", nil))
	var body struct{ Entries []QuarantineEntry }
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || len(body.Entries) != 1 || body.Entries[0].UID != 2 ||
		!strings.Contains(body.Entries[0].Reason, "broken mail file") {
		t.Errorf("quarantine answer %d %s", w.Code, w.Body)
	}
	w = httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest("GET", "/api/v1/imap/mail/status", nil))
	if w.Code != 200 || !strings.Contains(w.Body.String(), `"state":"idle"`) {
		t.Errorf("status answer %d %s", w.Code, w.Body)
	}
}

// TestMetrics: the collectors of two connectors register side by side and
// report each folder.
func TestMetrics(t *testing.T) {
	srv := startMemServer(t)
	st := openStore(t, storePath(t))
	in := &testIntake{st: st}
	cfg := testConfig(t, srv.Addr())
	cfg.Folders.Sent = SentNone
	a := startNamed(t, "one", cfg, st, in)
	b := startNamed(t, "two", cfg, st, in)
	a.waitState(t, 5*time.Second, StateIdle)
	b.waitState(t, 5*time.Second, StateIdle)
	srv.Deliver(t, "INBOX", newMail("a@client.test", testUser, "x", "m-1@client.test"))
	in.waitEvents(t, 1, 5*time.Second)
	reg := prometheus.NewRegistry()
	reg.MustRegister(a.c.Collector(), b.c.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			got[key] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	for _, name := range []string{"one", "two"} {
		if got["stagegate_imap_up,account=sales@acme.test,connector="+name+",folder=INBOX"] != 1 {
			t.Errorf("%s not up: %v", name, got)
		}
	}
	events := got["stagegate_imap_mails_total,account=sales@acme.test,connector=one,folder=INBOX,result=event"] +
		got["stagegate_imap_mails_total,account=sales@acme.test,connector=two,folder=INBOX,result=event"] +
		got["stagegate_imap_mails_total,account=sales@acme.test,connector=one,folder=INBOX,result=duplicate"] +
		got["stagegate_imap_mails_total,account=sales@acme.test,connector=two,folder=INBOX,result=duplicate"]
	if events < 1 {
		t.Errorf("no mail counted: %v", got)
	}
}

// TestSessionKillerNarrowed: a mail whose FETCH makes the server hang up
// before it sends anything blocks the whole batch; the batch is then
// fetched one mail at a time, and the mail is quarantined after it killed
// killLimit sessions alone. The count survives the reconnections. The
// mails after it go back to batches, and a second such mail among them is
// found the same way.
func TestSessionKillerNarrowed(t *testing.T) {
	srv := startMemServer(t)
	for i := range 5 {
		srv.Deliver(t, "INBOX", newMail("a@client.test", testUser, "x", fmt.Sprintf("kn-%d@client.test", i+1)))
	}
	srv.kill(2)
	srv.kill(4)
	in := &testIntake{st: openStore(t, storePath(t))}
	cfg := testConfig(t, srv.Addr())
	cfg.Folders.Sent, cfg.Start = SentNone, "1d"
	r := startConnector(t, cfg, in.st, in)
	in.waitEvents(t, 3, 10*time.Second)
	r.waitState(t, 5*time.Second, StateIdle)
	if got := eventIDs(in.Events()); !slices.Equal(got, []string{"mail:kn-1@client.test", "mail:kn-3@client.test", "mail:kn-5@client.test"}) {
		t.Errorf("events %v", got)
	}
	// Per killer: its batch once, then killLimit times alone.
	st := r.c.Status()[0]
	if st.Counters.Quarantined != 2 || st.LastUID != 5 || st.Counters.Failures != 2*(killLimit+1) {
		t.Errorf("status %+v; want 2 quarantined, last uid 5, %d failures", st, 2*(killLimit+1))
	}
	list, err := r.c.Quarantine(context.Background(), 10)
	if err != nil || len(list) != 2 || list[0].UID != 2 || list[1].UID != 4 || !strings.Contains(list[0].Reason, "dropped the connection") {
		t.Errorf("quarantine %+v, %v", list, err)
	}
	var cur cursor
	if _, err := store.GetJSON(context.Background(), in.st, r.c.key("cursor", "INBOX"), &cur); err != nil || cur.Trouble != nil {
		t.Errorf("cursor %+v, %v: the trouble record should be gone", cur, err)
	}
}

// TestSessionKiller: a mail whose FETCH makes the server drop the
// connection (Dovecot answers BYE when it cannot read the mail file) is
// narrowed down, quarantined after the sessions it killed, and no longer
// blocks the folder: the mails around it and the next mail are recorded.
func TestSessionKiller(t *testing.T) {
	d := sharedDovecot(t)
	d.Deliver(t, "INBOX", newMail("a@client.test", testUser, "x", "k-1@client.test"))
	bad := d.DeliverUnreadable(t, newMail("a@client.test", testUser, "x", "k-2@client.test"))
	d.Deliver(t, "INBOX", newMail("a@client.test", testUser, "x", "k-3@client.test"))
	d.Deliver(t, "INBOX", newMail("a@client.test", testUser, "x", "k-4@client.test"))
	badUID := d.UIDOf(t, bad)
	in := &testIntake{st: openStore(t, storePath(t))}
	cfg := serverConfig(t, d, d.Addr())
	cfg.Folders.Sent, cfg.Start = SentNone, "1d"
	r := startConnector(t, cfg, in.st, in)
	in.waitEvents(t, 3, 15*time.Second)
	r.waitState(t, 10*time.Second, StateIdle)
	d.Deliver(t, "INBOX", newMail("a@client.test", testUser, "x", "k-5@client.test"))
	in.waitEvents(t, 4, 10*time.Second)
	r.waitState(t, 10*time.Second, StateIdle)
	got := eventIDs(in.Events())
	slices.Sort(got)
	if want := []string{"mail:k-1@client.test", "mail:k-3@client.test", "mail:k-4@client.test", "mail:k-5@client.test"}; !slices.Equal(got, want) {
		t.Errorf("events %v, want %v", got, want)
	}
	st := r.c.Status()[0]
	if st.Counters.Quarantined != 1 || st.LastUID != 5 || !st.OK {
		t.Errorf("status %+v", st)
	}
	list, err := r.c.Quarantine(context.Background(), 10)
	if err != nil || len(list) != 1 || list[0].UID != badUID || !strings.Contains(list[0].Reason, "dropped the connection") {
		t.Errorf("quarantine %+v, %v; want uid %d", list, err, badUID)
	}
	checkOnce(t, in)
}

// waitCursor waits until the folder cursor at key has passed uid.
func waitCursor(t *testing.T, rec store.Records, key string, uid uint32) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var cur cursor
		if _, err := store.GetJSON(context.Background(), rec, key, &cur); err == nil && cur.LastUID >= uid {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("cursor %s did not pass uid %d", key, uid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
