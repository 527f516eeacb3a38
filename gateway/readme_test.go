package gateway

import (
	"os"
	"strings"
	"testing"

	"github.com/stagegate/stagegate/actions"
	"github.com/stagegate/stagegate/config"
)

// The README's send_email example is a complete config that passes the
// check (stagegate check runs the same Parse).
func TestREADMESendEmailExample(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n## Sending email (`smtp` and `send_email`)\n")
	_, block, ok2 := strings.Cut(sec, "```yaml\n")
	block, _, ok3 := strings.Cut(block, "```\n")
	if !ok || !ok2 || !ok3 {
		t.Fatal("no yaml example in the README's Sending email section")
	}
	env := map[string]string{
		"STAGEGATE_API_TOKEN": testToken, "STAGEGATE_TRACKING_KEY": "0123456789abcdef0123",
		"SMTP_PASSWORD": "secret", "IMAP_PASSWORD": "secret",
	}
	cfg, err := config.Parse([]byte(block), Kinds, ActionTypes(), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("README example:\n%v", err)
	}
	if s, ok := cfg.Pipelines[0].Stages[1].Actions[0].Settings.(*actions.SendEmail); !ok || s.SMTP != "outbound" || !s.Tracked() {
		t.Fatalf("send_email settings %+v", cfg.Pipelines[0].Stages[1].Actions[0].Settings)
	}
}

// The README's autoreply example is a config that loads, with one
// autoreply for the forms connector's contact form.
func TestREADMEAutoreplyExample(t *testing.T) {
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n**Autoreply of a web form**")
	_, block, ok2 := strings.Cut(sec, "```yaml\n")
	block, _, ok3 := strings.Cut(block, "```\n")
	if !ok || !ok2 || !ok3 {
		t.Fatal("no yaml example in the README's autoreply paragraph")
	}
	env := map[string]string{"STAGEGATE_API_TOKEN": testToken, "SMTP_PASSWORD": "secret"}
	cfg, err := config.Parse([]byte(block), Kinds, ActionTypes(), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatalf("README example:\n%v", err)
	}
	eas := cfg.EventActions()
	if len(eas) != 1 || eas[0].Connector != "site" || eas[0].Channel != "contact" {
		t.Fatalf("event actions %+v", eas)
	}
	if s, ok := eas[0].Action.Settings.(*actions.SendEmail); !ok || s.SMTP != "outbound" || s.Tracked() {
		t.Fatalf("autoreply settings %+v", eas[0].Action.Settings)
	}
}
