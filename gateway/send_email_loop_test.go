package gateway

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/stagegate/stagegate/internal/testutil/smtpserver"
)

// loopConfig closes the loop: offer sends a tracked mail (and saves a copy
// in the IMAP account's Sent folder); the open, the pricing click and the
// customer's reply, read over IMAP, move the item on.
const loopConfig = `
listen: 127.0.0.1:0
store: STORE
api:
  tokens: ["${TOKEN}"]
actions: {backoff_min: 20ms, backoff_max: 100ms, max_attempts: 4, poll: 20ms}
smtp:
  - {name: outbound, host: 127.0.0.1, port: SMTP_PORT, tls: none}
pipelines:
  - id: sales
    stages:
      - id: new
      - id: offer
        actions:
          - type: send_email
            smtp: outbound
            from: "Bob Seller <bob@example.com>"
            subject: "Your offer"
            html: '<p>Hello {{.Contact.Name}}, see <a href="https://example.com/pricing">our prices</a>.</p>'
            save_to: sales-mail
      - id: mailed
        triggers: [{type: email.sent, mailbox: "smtp:outbound"}]
      - id: viewed
        triggers: [{type: email.opened}]
      - id: interested
        triggers: [{type: email.clicked, url: https://example.com/pricing}]
      - id: replied
        triggers: [{type: email.incoming}]
connectors:
  - name: track
    type: tracking
    keys: ["0123456789abcdef0123456789abcdef"]
    scoring: {quick: 1ms}
  - name: sales-mail
    type: imap
    host: 127.0.0.1
    port: IMAP_PORT
    tls: none
    username: bob@example.com
    password: secret
    folders: {incoming: INBOX, sent: Sent}
    own_addresses: [example.com]
    mode: poll
    poll_interval: 50ms
`

// startMemIMAP runs go-imap's memory server with bob's INBOX and Sent.
func startMemIMAP(t *testing.T) (*imapmemserver.User, int) {
	t.Helper()
	mem := imapmemserver.New()
	user := imapmemserver.NewUser("bob@example.com", "secret")
	for _, f := range []string{"INBOX", "Sent"} {
		if err := user.Create(f, nil); err != nil {
			t.Fatal(err)
		}
	}
	mem.AddUser(user)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}},
		InsecureAuth: true,
		Logger:       log.New(io.Discard, "", 0),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return user, ln.Addr().(*net.TCPAddr).Port
}

type literal struct{ *bytes.Reader }

func (l literal) Size() int64 { return l.Reader.Size() }

// The whole loop through real mail servers: an item enters offer → the
// mail reaches the SMTP server (and a copy the Sent folder) → mailed; the
// customer opens it → viewed, follows the pricing link → interested, and
// answers it (In-Reply-To the sent Message-ID) → replied.
func TestSendEmailWholeLoop(t *testing.T) {
	smtpSrv := smtpserver.Start(t)
	user, imapPort := startMemIMAP(t)
	src := strings.NewReplacer("STORE", boltStore(t), "SMTP_PORT", fmt.Sprint(smtpSrv.Port), "IMAP_PORT", fmt.Sprint(imapPort)).Replace(loopConfig)
	tg := startGatewayConfig(t, src)
	it := tg.newContactItem(map[string]string{"email": "ann@client.test", "name": "Ann"}, nil)
	tg.moveTo(it.ID, "offer")
	tg.waitStage(it.ID, "mailed")
	msgs := smtpSrv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	mid := msgs[0].Header().Get("Message-Id")
	html := htmlPart(t, msgs[0].Raw)
	paths := regexp.MustCompile(`"http://127\.0\.0\.1:0(/t/[oc]/[A-Za-z0-9_-]+)"`).FindAllStringSubmatch(html, -1)
	if len(paths) != 2 {
		t.Fatalf("want a click link and a pixel in\n%s", html)
	}
	tg.waitAction(it.ID, "done") // the copy is saved after the event
	sent, err := user.Status("Sent", &imap.StatusOptions{NumMessages: true, NumUnseen: true})
	if err != nil || sent.NumMessages == nil || *sent.NumMessages != 1 || *sent.NumUnseen != 0 {
		t.Fatalf("Sent folder: %+v %v, want the copy, seen", sent, err)
	}

	browser := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	hit := func(path string) int {
		req, _ := http.NewRequest("GET", tg.base+path, nil)
		req.Header.Set("User-Agent", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15")
		resp, err := browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	var click, pixel string
	for _, p := range paths {
		if strings.HasPrefix(p[1], "/t/c/") {
			click = p[1]
		} else {
			pixel = p[1]
		}
	}
	hit(pixel)
	tg.waitStage(it.ID, "viewed")
	time.Sleep(20 * time.Millisecond)
	if st := hit(click); st != http.StatusFound {
		t.Fatalf("click: %d", st)
	}
	tg.waitStage(it.ID, "interested")

	reply := "From: Ann <ann@client.test>\r\nTo: Bob Seller <bob@example.com>\r\nSubject: Re: Your offer\r\n" +
		"Message-ID: <reply-1@client.test>\r\nIn-Reply-To: " + mid + "\r\nReferences: " + mid + "\r\n" +
		"Date: " + time.Now().Format(time.RFC1123Z) + "\r\n\r\nSounds good, let's talk.\r\n"
	if _, err := user.Append("INBOX", literal{bytes.NewReader([]byte(reply))}, &imap.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
	tg.waitStage(it.ID, "replied")
}
