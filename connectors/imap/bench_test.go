package imap

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/normalize"
)

// The benchmarks run against a real Dovecot on loopback (skipped without
// it) and report their figures with b.ReportMetric; run them once each:
//
//	go test -run '^$' -bench Dovecot -benchtime 1x ./connectors/imap/

// timedIntake records when each event became durable.
type timedIntake struct {
	in *testIntake
	mu sync.Mutex
	at map[string]time.Time
}

func (ti *timedIntake) Submit(ctx context.Context, ev *normalize.Event) (connectors.Result, error) {
	r, err := ti.in.Submit(ctx, ev)
	if err == nil {
		ti.mu.Lock()
		ti.at[ev.ID] = time.Now()
		ti.mu.Unlock()
	}
	return r, err
}

func (ti *timedIntake) Reject(string, string) {}

func (ti *timedIntake) when(id string) (time.Time, bool) {
	ti.mu.Lock()
	defer ti.mu.Unlock()
	t, ok := ti.at[id]
	return t, ok
}

// BenchmarkDovecotIdleLatency: 200 mails delivered one after the other with
// doveadm save into an IDLEd INBOX; latency runs from the start of the
// delivery to the event being durable in a bolt store (fsync'd). A proxy
// notes when the server announces each mail (EXISTS): the part after it
// is the connector's own (fetch, parse, durable write).
func BenchmarkDovecotIdleLatency(b *testing.B) {
	d := startDovecot(b)
	var mu sync.Mutex
	var exists []time.Time
	p := startProxy(b, d.Addr())
	p.fromServer = func(chunk []byte) {
		if bytes.Contains(chunk, []byte(" EXISTS")) {
			mu.Lock()
			exists = append(exists, time.Now())
			mu.Unlock()
		}
	}
	for range b.N {
		in := &timedIntake{in: &testIntake{st: openStore(b, storePath(b))}, at: map[string]time.Time{}}
		cfg := serverConfig(b, d, p.Addr())
		cfg.Folders.Sent = SentNone
		cfg.IdleRefresh = DefaultIdleRefresh
		r := startConnector(b, cfg, in.in.st, in)
		r.waitState(b, 10*time.Second, StateIdle)
		const n = 200
		var total, own []time.Duration
		for i := range n {
			id := fmt.Sprintf("lat-%d-%d@client.test", time.Now().UnixNano(), i)
			start := time.Now()
			d.Deliver(b, "INBOX", newMail("a@client.test", d.User(), "latency", id))
			for {
				if at, ok := in.when("mail:" + id); ok {
					total = append(total, at.Sub(start))
					mu.Lock()
					for _, e := range exists {
						if e.After(start) && !e.After(at) {
							own = append(own, at.Sub(e))
							break
						}
					}
					mu.Unlock()
					break
				}
				if time.Since(start) > 10*time.Second {
					b.Fatalf("mail %d: no event after 10s", i)
				}
				time.Sleep(200 * time.Microsecond)
			}
			time.Sleep(20 * time.Millisecond)
		}
		r.stop()
		report := func(name string, l []time.Duration) {
			if len(l) == 0 {
				return
			}
			slices.Sort(l)
			b.ReportMetric(float64(l[len(l)/2].Microseconds())/1000, name+"_p50_ms")
			b.ReportMetric(float64(l[len(l)*99/100].Microseconds())/1000, name+"_p99_ms")
		}
		report("delivery", total)
		report("after_exists", own)
		b.ReportMetric(float64(len(own)), "exists_seen")
	}
}

// fillMaildir writes n small mails straight into the user's INBOX maildir
// (as an MTA would), then lets Dovecot index them.
func fillMaildir(b *testing.B, d *dovecot, n int) {
	box := filepath.Join(d.dir, "mail", d.user)
	for _, sub := range []string{"new", "cur", "tmp"} {
		_ = os.MkdirAll(filepath.Join(box, sub), 0o755)
	}
	body := strings.Repeat("We would like to know more about your offer and prices. ", 40)
	date := time.Now().Add(-time.Hour)
	for i := range n {
		raw := fmt.Sprintf("Received: from mx.client.test by mx.acme.test; %s\nFrom: Customer %d <c%d@client.test>\nTo: %s\n"+
			"Subject: Question %d\nDate: %s\nMessage-ID: <bulk-%d@client.test>\nMIME-Version: 1.0\n"+
			"Content-Type: text/plain; charset=utf-8\n\n%s\n", date.Format(time.RFC1123Z), i, i, d.user, i,
			date.Format(time.RFC1123Z), i, body)
		name := fmt.Sprintf("%d.bulk%06d.test", date.Unix(), i)
		if err := os.WriteFile(filepath.Join(box, "new", name), []byte(raw), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	if out, err := exec.Command("chown", "-R", "dovecot:dovecot", filepath.Join(d.dir, "mail")).CombinedOutput(); err != nil {
		b.Fatalf("chown: %v: %s", err, out)
	}
	d.doveadm(b, nil, "index", "-u", d.user, "INBOX")
}

// BenchmarkDovecotCatchUp: a folder of 10,000 mails read from scratch
// (start: 30d), against doveadm fetch reading the headers of the same
// mails in the same run. catchup_nop measures the connector alone (an
// intake that keeps nothing); catchup_bolt records every event in a bolt
// store.
func BenchmarkDovecotCatchUp(b *testing.B) {
	const n = 10000
	d := startDovecot(b)
	fillMaildir(b, d, n)
	for range b.N {
		start := time.Now()
		cmd := exec.Command("doveadm", "-c", d.conf, "fetch", "-u", d.user, "uid hdr", "mailbox", "INBOX")
		var out bytes.Buffer
		cmd.Stdout = &out
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
		ref := time.Since(start)
		if got := bytes.Count(out.Bytes(), []byte("Message-ID: <bulk-")); got != n {
			b.Fatalf("doveadm fetch read %d mails", got)
		}
		b.ReportMetric(float64(n)/ref.Seconds(), "doveadm_mails/s")
		b.ReportMetric(float64(n)/rawFetch(b, d, n).Seconds(), "imap_raw_mails/s")

		for _, kind := range []string{"nop", "bolt"} {
			var in connectors.Intake = &countIntake{}
			var count func() int
			if kind == "bolt" {
				ti := &testIntake{st: openStore(b, storePath(b))}
				in, count = ti, func() int { return len(ti.Events()) }
			} else {
				count = in.(*countIntake).count
			}
			cfg := serverConfig(b, d, d.Addr())
			cfg.Folders.Sent, cfg.Start = SentNone, "30d"
			start := time.Now()
			r := startConnector(b, cfg, openStore(b, storePath(b)), in)
			for count() < n {
				if time.Since(start) > 5*time.Minute {
					b.Fatalf("%s: %d events after 5m", kind, count())
				}
				time.Sleep(time.Millisecond)
			}
			took := time.Since(start)
			r.stop()
			b.ReportMetric(float64(n)/took.Seconds(), "catchup_"+kind+"_mails/s")
			b.ReportMetric(ref.Seconds()/took.Seconds(), "ratio_"+kind)
		}
	}
}

// rawFetch times the connector's FETCH for the whole folder, its mails
// read and dropped: what the protocol and the server cost alone.
func rawFetch(b *testing.B, d *dovecot, n int) time.Duration {
	c := client(b, d.Addr(), d.user)
	defer c.Close()
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	cmd := c.Fetch(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, InternalDate: true, RFC822Size: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true, Partial: &imap.SectionPartial{Size: DefaultMaxMessageBytes}}}})
	got := 0
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		if _, _, err := readMessage(msg, DefaultMaxMessageBytes); err != nil {
			b.Fatal(err)
		}
		got++
	}
	if err := cmd.Close(); err != nil || got != n {
		b.Fatalf("raw fetch: %d mails, %v", got, err)
	}
	return time.Since(start)
}

// countIntake accepts everything and counts it: the connector alone.
type countIntake struct {
	mu sync.Mutex
	n  int
}

func (c *countIntake) Submit(_ context.Context, ev *normalize.Event) (connectors.Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return connectors.Result{EventID: ev.ID}, nil
}

func (c *countIntake) Reject(string, string) {}

func (c *countIntake) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// BenchmarkDovecotPoll: without IDLE, the round trips of a poll cycle that
// finds nothing (target 1), counted on the wire by a proxy.
func BenchmarkDovecotPoll(b *testing.B) {
	d := startDovecot(b)
	p := startProxy(b, d.Addr())
	for range b.N {
		in := &testIntake{st: openStore(b, storePath(b))}
		cfg := serverConfig(b, d, p.Addr())
		cfg.Folders.Sent, cfg.Mode, cfg.PollInterval = SentNone, ModePoll, 10*time.Millisecond
		r := startConnector(b, cfg, in.st, in)
		r.waitState(b, 10*time.Second, StatePolling)
		time.Sleep(50 * time.Millisecond)
		lines0, polls0 := p.lines.Load(), r.c.Status()[0].Counters.Polls
		time.Sleep(time.Second)
		lines1, polls1 := p.lines.Load(), r.c.Status()[0].Counters.Polls
		r.stop()
		b.ReportMetric(float64(lines1-lines0)/float64(polls1-polls0), "round_trips/poll")
		b.ReportMetric(float64(polls1-polls0), "polls")
	}
}
