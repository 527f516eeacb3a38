package config

import (
	"maps"
	"testing"

	"github.com/stagegate/stagegate/actions"
	"github.com/stagegate/stagegate/connectors"
	"github.com/stagegate/stagegate/connectors/webhook"
)

// The smtp section and the send_email actions that name its accounts are
// checked with their paths: plaintext only on loopback, unique names, an
// existing account, a tracking connector for tracked mail, an imap
// connector for save_to.
func TestSMTPSection(t *testing.T) {
	kinds := maps.Clone(testKinds)
	kinds["imap"], kinds["tracking"] = connectors.Kind{}, connectors.Kind{}
	const src = `api: {tokens: ["0123456789abcdef0123"]}
smtp:
  - {name: out, host: smtp.example.com, tls: none, username: u, password: "${SMTP_PASSWORD}"}
  - {name: out, host: "", tls: ssl, port: 70000, max_per_minute: -1, command_timeout: 1h}
  - {name: Bad Name, host: 127.0.0.1, tls: none, username: u}
  - {name: fine, host: smtp.example.com, password: p, frob: 1}
pipelines:
  - id: sales
    stages:
      - id: offer
        actions:
          - {type: send_email, smtp: nope, from: "bob@example.com", subject: Hi, html: "<p>hi</p>", save_to: mail}
          - {type: send_email, from: "not an address", subject: "{{.Item", track: false, honeypot: true}
          - {type: send_email, smtp: fine, from: "{{.Item.Responsible}}@example.com", subject: Hi, text: hi, track: false}
connectors:
  - {name: mail, type: forms}
`
	_, err := Parse([]byte(src), kinds, actions.Kinds(), lookup(map[string]string{"SMTP_PASSWORD": "secret"}))
	want := `smtp[0].tls: none sends mail (and the password) in clear; only for a loopback host unless allow_plaintext is true
smtp[1].name: duplicate smtp account name "out" (first used by smtp[0])
smtp[1].host: required
smtp[1].tls: must be starttls, implicit or none, not "ssl"
smtp[1].port: must be 1 to 65535
smtp[1].max_per_minute: must be from 0 (no bound) to 100000
smtp[1].command_timeout: must be between 10ms and 30m
smtp[2].password: required with a username (write it as ${ENV_VAR})
smtp[2].name: required: 1-64 lowercase letters, digits, '_' or '-'
smtp[3].username: required with a password
smtp[3].frob: unknown key
pipelines[0].stages[0].actions[0].track: needs a connector of type tracking (or set track: false)
pipelines[0].stages[0].actions[0].smtp: unknown smtp account "nope" (the smtp section has: out, Bad Name, fine)
pipelines[0].stages[0].actions[0].save_to: must name an imap connector (the file has: none)
pipelines[0].stages[0].actions[1].smtp: required: the name of an account of the smtp section
pipelines[0].stages[0].actions[1].html: html or text is required
pipelines[0].stages[0].actions[1].from: not one email address: "not an address"
pipelines[0].stages[0].actions[1].subject: template: subject:1: unclosed action
pipelines[0].stages[0].actions[1].honeypot: needs track: true`
	if err == nil || err.Error() != want {
		t.Fatalf("got\n%v\nwant\n%s", err, want)
	}
}

// A form's autoreply is checked like a send_email action, at its path in
// the forms connector: the smtp account, the tracking connector, the
// templates, the from address.
func TestFormAutoreply(t *testing.T) {
	kinds := maps.Clone(testKinds)
	kinds["forms"] = webhook.FormsKind
	const head = `api: {tokens: ["0123456789abcdef0123"]}
smtp:
  - {name: out, host: 127.0.0.1, tls: none}
pipelines:
  - {id: sales, stages: [{id: new}]}
connectors:
  - name: site
    type: forms
    forms:
`
	_, err := Parse([]byte(head+`      - id: contact
        autoreply: {smtp: nope, subject: "{{.Event", text: hi}
      - id: demo
        autoreply: {smtp: out, from: "bob@example.com", subject: Hi, html: "<p>hi</p>"}
`), kinds, actions.Kinds(), lookup(nil))
	want := `connectors[0].forms[0].autoreply.from: required
connectors[0].forms[0].autoreply.track: needs a connector of type tracking (or set track: false)
connectors[0].forms[0].autoreply.smtp: unknown smtp account "nope" (the smtp section has: out)
connectors[0].forms[0].autoreply.subject: template: subject:1: unclosed action
connectors[0].forms[1].autoreply.track: needs a connector of type tracking (or set track: false)`
	if err == nil || err.Error() != want {
		t.Fatalf("got\n%v\nwant\n%s", err, want)
	}
	cfg, err := Parse([]byte(head+`      - id: contact
        autoreply: {smtp: out, from: "Sales <sales@example.com>", subject: "Thanks, {{.Contact.Name}}", text: "We got it.", track: false}
`), kinds, actions.Kinds(), lookup(nil))
	if err != nil {
		t.Fatal(err)
	}
	eas := cfg.EventActions()
	if len(eas) != 1 || eas[0].Connector != "site" || eas[0].Channel != "contact" || eas[0].Action.Type != "send_email" || !eas[0].NeedsEmail {
		t.Fatalf("event actions %+v", eas)
	}
}
