// Package imap is the connector kind "imap": it watches the folders of one
// mail account over IMAP and turns every mail a customer writes (incoming
// folders) and every mail an employee sends to a customer (the sent
// folder) into email.incoming and email.sent events.
//
// Guarantees, and how they are kept:
//
//   - Nothing twice: an event id names the mail (its Message-ID, or a hash
//     of its headers, date and body for mail without one), so a mail fetched
//     again after a crash, a lost connection, a rescan or from a second
//     folder is a duplicate for the intake and changes nothing.
//   - Nothing missed: a cursor per (account, folder) — UIDVALIDITY and the
//     last UID done — is kept in the store and advanced only after the events
//     of the fetched mail are durable. A new UIDVALIDITY (the folder was
//     recreated) rescans the folder.
//   - The mailbox is never changed: folders are opened with EXAMINE (read
//     only) and read with BODY.PEEK; no flag is set, nothing is moved or
//     deleted.
//
// Layout: config.go (settings); normalize.go, parse.go, body.go and
// classify.go (the pure normalizer, golden-tested on testdata/mail and
// fuzzed); imap.go (the connector); worker.go (one watched folder: connect,
// catch up, wait with IDLE or poll, reconnect with backoff); fetch.go and
// sync.go (streamed batch FETCH, parallel normalizing and submitting, the
// cursor following); conn.go (the IMAP connection, its watchdog and
// searches); cursor.go; lease.go; status.go and metrics.go (per-folder
// state for /readyz, the API and Prometheus).
package imap
