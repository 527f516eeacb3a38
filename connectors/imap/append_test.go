package imap

import (
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/connectors"
)

// SaveSent appends a copy flagged \Seen to the sent folder (named, or
// found by its \Sent attribute on Dovecot); with folders.sent none it
// refuses.
func TestSaveSent(t *testing.T) {
	forEachServer(t, func(t *testing.T, srv mailServer) {
		cfg := serverConfig(t, srv, srv.Addr())
		cfg.Folders.Sent = sentFolder(srv)
		c, err := New(connectors.Base{Name: "mail", Type: "imap"}, cfg, connectors.Deps{
			Intake: &testIntake{st: openStore(t, storePath(t))}, Records: openStore(t, storePath(t)), Now: time.Now})
		if err != nil {
			t.Fatal(err)
		}
		before := len(folderFlags(t, srv, "Sent"))
		raw := newMail("bob@acme.test", "ann@client.test", "Your offer", "<sg.1@acme.test>")
		if err := c.SaveSent(t.Context(), raw, time.Now()); err != nil {
			t.Fatal(err)
		}
		got := folderFlags(t, srv, "Sent")
		if len(got) != before+1 || !strings.HasSuffix(got[len(got)-1], `:\Seen`) {
			t.Fatalf("Sent folder %v, want one more mail flagged \\Seen", got)
		}
		cfg.Folders.Sent = SentNone
		if err := c.SaveSent(t.Context(), raw, time.Now()); err == nil {
			t.Fatal("saved with folders.sent: none")
		}
	})
}
