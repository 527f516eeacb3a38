package imap

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/normalize"
)

// hugeMail is a mail with a body of about size bytes.
func hugeMail(size int) []byte {
	var b bytes.Buffer
	b.WriteString("From: big@client.test\r\nTo: " + testUser + "\r\nSubject: huge\r\nMessage-ID: <huge-1@client.test>\r\n" +
		"Content-Type: text/plain\r\n\r\nThe start of a very large mail.\r\n")
	line := strings.Repeat("x", 78) + "\r\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	return b.Bytes()
}

// TestHostileMail delivers every testdata/mail/hostile_*.eml (unknown
// charset, missing final boundary, 1,001 header lines, a 5,000-byte
// header line, broken base64, no Message-ID, 8-bit headers...) and, unless
// -short, a 60 MB mail (12 MB on the memory server), then an ordinary one: each gives an event (with
// warnings where something was wrong) and the connector goes on.
func TestHostileMail(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv mailServer) {
		in := &testIntake{st: openStore(t, storePath(t))}
		cfg := serverConfig(t, srv, srv.Addr())
		cfg.Folders.Sent = SentNone
		cfg.CommandTimeout = 30 * time.Second
		r := startConnector(t, cfg, in.st, in)
		r.waitState(t, 10*time.Second, StateIdle)
		files, _ := filepath.Glob("testdata/mail/hostile_*.eml")
		for _, f := range files {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			srv.Deliver(t, "INBOX", raw)
		}
		want := len(files) + 1
		if !testing.Short() {
			// 60 MB on Dovecot; the memory server keeps and re-reads whole
			// mails in memory, so it gets 12 MB, still over the 10 MiB read.
			size := 60 << 20
			if srv.Name() == "memserver" {
				size = 12 << 20
			}
			srv.Deliver(t, "INBOX", hugeMail(size))
			want++
		}
		srv.Deliver(t, "INBOX", newMail("after@client.test", testUser, "after", "after-hostile@client.test"))
		evs := in.waitEvents(t, want, 60*time.Second)
		warned := 0
		for _, ev := range evs {
			switch {
			case len(ev.Warnings) > 0:
				warned++
			case ev.ID == "mail:after-hostile@client.test":
			case ev.ID == "mail:ho-1@client.test" && srv.Name() == "memserver":
				// The memory server stores a header-only mail with the
				// blank line it lacks: nothing is left to warn about.
			default:
				t.Errorf("%s carries no warning", ev.ID)
			}
			if ev.ID == "mail:huge-1@client.test" && (ev.Attrs["truncated"] != "true" || len(ev.Warnings) == 0) {
				t.Errorf("the huge mail is not marked truncated: %v %v", ev.Attrs, ev.Warnings)
			}
		}
		if !slices.ContainsFunc(evs, func(ev *normalize.Event) bool { return ev.ID == "mail:after-hostile@client.test" }) {
			t.Errorf("the mail after the hostile ones is missing: %v", eventIDs(evs))
		}
		r.waitState(t, 5*time.Second, StateIdle)
		st := r.c.Status()[0]
		t.Logf("%d events, %d with warnings, counters %+v", len(evs), warned, st.Counters)
		if st.Counters.Quarantined != 0 || st.Counters.Failures != 0 {
			t.Errorf("status after hostile mail: %+v", st)
		}
	})
}
