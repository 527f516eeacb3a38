package imap

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/normalize"
)

// forEachServer runs scenario against the memory server and, when it is
// installed, a real Dovecot (shared by the tests, one account each), in
// parallel.
func forEachServer(t *testing.T, scenario func(t *testing.T, srv mailServer)) {
	for name, start := range map[string]func(t testing.TB) mailServer{
		"memserver": func(t testing.TB) mailServer { return startMemServer(t) },
		"dovecot":   func(t testing.TB) mailServer { return sharedDovecot(t) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			scenario(t, start(t))
		})
	}
}

// sentFolder is how the scenarios name the sent folder: Dovecot marks it
// \Sent (found with folders.sent: auto); the memory server cannot.
func sentFolder(srv mailServer) string {
	if srv.Name() == "dovecot" {
		return SentAuto
	}
	return "Sent"
}

// TestIncomingAndSent: a customer's mail gives email.incoming, a mail in
// the sent folder gives email.sent for each customer recipient, our own
// and automatic mail is recorded as not customer mail, mail present before
// the start is not taken, and the mailbox is left exactly as it was.
func TestIncomingAndSent(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv mailServer) {
		srv.Deliver(t, "INBOX", newMail("old@client.test", testUser, "before start", "old-1@client.test"))
		in := &testIntake{st: openStore(t, storePath(t))}
		cfg := serverConfig(t, srv, srv.Addr())
		cfg.Folders.Sent = sentFolder(srv)
		r := startConnector(t, cfg, in.st, in)
		r.waitState(t, 10*time.Second, StateIdle)
		for _, f := range r.c.Status() {
			if f.Kind == "sent" && f.Folder != "Sent" {
				t.Errorf("sent folder resolved to %q", f.Folder)
			}
		}

		srv.Deliver(t, "INBOX", newMail("Ann <Ann@Client.test>", "Sales <"+testUser+">", "Pricing?", "ann-1@client.test"))
		srv.Deliver(t, "Sent", newMail("Bob <bob@acme.test>", "Ann <ann@client.test>", "Re: Pricing?", "bob-1@acme.test",
			"Cc: "+testUser, "In-Reply-To: <ann-1@client.test>"))
		srv.Deliver(t, "INBOX", newMail("ooo@client.test", testUser, "Away", "ooo-1@client.test", "Auto-Submitted: auto-replied"))
		evs := in.waitEvents(t, 3, 10*time.Second)

		byID := map[string]*normalize.Event{}
		for _, ev := range evs {
			byID[ev.ID] = ev
		}
		inc := byID["mail:ann-1@client.test"]
		if inc == nil || inc.Type != normalize.EmailIncoming || inc.Subject.Email != "ann@client.test" ||
			inc.Channel != "INBOX" || inc.Attrs["mailbox"] != srv.User() || inc.Attrs["not_customer"] != "" {
			t.Fatalf("incoming event: %+v", inc)
		}
		sent := byID["mail:sent:bob-1@acme.test:ann@client.test"]
		if sent == nil || sent.Type != normalize.EmailSent || sent.Subject.Email != "ann@client.test" || sent.Channel != "Sent" {
			t.Fatalf("sent event: %+v (events %v)", sent, eventIDs(evs))
		}
		if ooo := byID["mail:ooo-1@client.test"]; ooo == nil || ooo.Attrs[normalize.AttrNotCustomerMail] != "auto-submitted: auto-replied" {
			t.Fatalf("auto reply: %+v", ooo)
		}
		time.Sleep(100 * time.Millisecond)
		if n := len(in.Events()); n != 3 {
			t.Errorf("%d events, want 3 (mail from before the start is not taken): %v", n, eventIDs(in.Events()))
		}
		// The mailbox is unchanged: no \Seen, nothing moved or deleted.
		for folder, want := range map[string]int{"INBOX": 3, "Sent": 1} {
			flags := folderFlags(t, srv, folder)
			if len(flags) != want {
				t.Errorf("%s holds %d mails, want %d", folder, len(flags), want)
			}
			for _, f := range flags {
				if strings.Contains(f, "Seen") || strings.Contains(f, "Deleted") {
					t.Errorf("%s: flags changed: %s", folder, f)
				}
			}
		}
	})
}

// TestRestartNoDuplicate: mail that arrives while the gateway is stopped
// is taken after the restart, and nothing is recorded twice; with Dovecot,
// a server restart during IDLE is survived too.
func TestRestartNoDuplicate(t *testing.T) {
	// Dovecot is stopped and started: this test needs its own.
	for name, start := range map[string]func(t testing.TB) mailServer{
		"memserver": func(t testing.TB) mailServer { return startMemServer(t) },
		"dovecot":   func(t testing.TB) mailServer { return startDovecot(t) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			testRestartNoDuplicate(t, start(t))
		})
	}
}

func testRestartNoDuplicate(t *testing.T, srv mailServer) {
	path := storePath(t)
	st := openStore(t, path)
	in := &testIntake{st: st}
	cfg := serverConfig(t, srv, srv.Addr())
	cfg.Folders.Sent = SentNone
	r := startConnector(t, cfg, st, in)
	r.waitState(t, 10*time.Second, StateIdle)
	for i := range 3 {
		srv.Deliver(t, "INBOX", newMail("c@client.test", testUser, "one", fmt.Sprintf("r1-%d@client.test", i)))
	}
	in.waitEvents(t, 3, 10*time.Second)
	r.stop()
	for i := range 2 {
		srv.Deliver(t, "INBOX", newMail("c@client.test", testUser, "two", fmt.Sprintf("r2-%d@client.test", i)))
	}
	r = startConnector(t, cfg, st, in)
	in.waitEvents(t, 5, 10*time.Second)
	r.waitState(t, 10*time.Second, StateIdle)

	if d, ok := srv.(*dovecot); ok {
		d.Stop(t)
		d.DeliverOffline(t, newMail("c@client.test", testUser, "while down", "r3-0@client.test"))
		time.Sleep(100 * time.Millisecond)
		d.Start(t)
		in.waitEvents(t, 6, 15*time.Second)
		r.waitState(t, 10*time.Second, StateIdle)
		srv.Deliver(t, "INBOX", newMail("c@client.test", testUser, "after", "r3-1@client.test"))
		in.waitEvents(t, 7, 10*time.Second)
		if st := r.c.Status()[0]; st.Counters.Failures == 0 || st.Counters.Connects < 2 {
			t.Errorf("no reconnect after the server restart: %+v", st)
		}
	}
	time.Sleep(100 * time.Millisecond)
	checkOnce(t, in)
	if in.Dups() != 0 {
		t.Errorf("%d duplicate submissions: the cursor should have prevented them", in.Dups())
	}
}

// checkOnce fails when an event id was recorded twice.
func checkOnce(t *testing.T, in *testIntake) {
	t.Helper()
	ids := eventIDs(in.Events())
	sorted := slices.Clone(ids)
	slices.Sort(sorted)
	if len(slices.Compact(sorted)) != len(ids) {
		t.Fatalf("an event was recorded twice: %v", ids)
	}
}

// TestCutMidFetch: the connection breaks in the middle of a FETCH; after
// the reconnect every mail is recorded exactly once.
func TestCutMidFetch(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv mailServer) {
		const n = 30
		pad := strings.Repeat("0123456789abcdef", 1000) // ~16 KB per mail
		for i := range n {
			srv.Deliver(t, "INBOX", newMail("c@client.test", testUser, "bulk", fmt.Sprintf("cut-%d@client.test", i), "X-Pad: "+pad))
		}
		p := startProxy(t, srv.Addr())
		p.cutNextAfter(200 << 10) // the first connection breaks after ~12 mails
		in := &testIntake{st: openStore(t, storePath(t))}
		cfg := serverConfig(t, srv, p.Addr())
		cfg.Folders.Sent, cfg.Start = SentNone, "1d"
		r := startConnector(t, cfg, in.st, in)
		in.waitEvents(t, n, 20*time.Second)
		time.Sleep(100 * time.Millisecond)
		checkOnce(t, in)
		if got := len(in.Events()); got != n {
			t.Errorf("%d events, want %d", got, n)
		}
		if st := r.c.Status()[0]; st.Counters.Failures == 0 {
			t.Errorf("the connection was not cut: %+v", st)
		}
	})
}

// TestUIDValidityChange: the folder is deleted and recreated (a new
// UIDVALIDITY) with the same mails plus new ones: only the new ones become
// events, mail without a Message-ID included.
func TestUIDValidityChange(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv mailServer) {
		p := startProxy(t, srv.Addr())
		in := &testIntake{st: openStore(t, storePath(t))}
		cfg := serverConfig(t, srv, p.Addr())
		cfg.Folders.Incoming, cfg.Folders.Sent = StringList{"Support"}, SentNone
		r := startConnector(t, cfg, in.st, in)
		r.waitState(t, 10*time.Second, StateIdle)
		old := [][]byte{
			newMail("a@client.test", testUser, "a", "uv-a@client.test"),
			newMail("b@client.test", testUser, "b", "uv-b@client.test"),
			newMail("d@client.test", testUser, "no id", ""),
		}
		for _, m := range old {
			srv.Deliver(t, "Support", m)
		}
		in.waitEvents(t, 3, 10*time.Second)
		uv := r.c.Status()[0].UIDValidity

		srv.Recreate(t, "Support")
		for _, m := range old {
			srv.Deliver(t, "Support", m)
		}
		srv.Deliver(t, "Support", newMail("c@client.test", testUser, "c", "uv-c@client.test"))
		if srv.Name() == "memserver" {
			p.cutAll() // the memory server does not tell a client its folder went away
		}
		evs := in.waitEvents(t, 4, 15*time.Second)
		time.Sleep(200 * time.Millisecond)
		if got := eventIDs(in.Events()); len(got) != 4 || evs[3].ID != "mail:uv-c@client.test" {
			t.Fatalf("events %v, want the 3 old ones and uv-c", got)
		}
		st := r.c.Status()[0]
		if st.UIDValidity == uv {
			t.Errorf("UIDVALIDITY still %d", uv)
		}
		if in.Dups() != 3 {
			t.Errorf("%d duplicates, want 3 (the rescanned old mails)", in.Dups())
		}
	})
}
