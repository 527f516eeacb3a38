package webhook

import (
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/stagegate/stagegate/validate"
)

// decodeInto decodes a YAML section the way the config loader does:
// unknown keys rejected, into a config with defaults set.
func decodeInto(t *testing.T, src string, cfg any) {
	t.Helper()
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		t.Fatalf("decode: %v", err)
	}
}

func paths(errs validate.Errors) []string {
	var ps []string
	for _, e := range errs {
		ps = append(ps, e.Path)
	}
	return ps
}

func TestWebhookConfig(t *testing.T) {
	cfg := NewWebhookConfig()
	decodeInto(t, "secret: "+testSecret+"\nsecrets: [plain-old]\ntolerance: 10m\n", cfg)
	if errs := cfg.Validate(); len(errs) > 0 {
		t.Fatalf("valid section: %v", errs)
	}
	if cfg.Tolerance != 10*time.Minute || cfg.MaxBody != DefaultWebhookMaxBody || cfg.DefaultRegion != "" {
		t.Errorf("decoded %+v", cfg)
	}
	if got := cfg.AllSecrets(); !slices.Equal(got, []string{testSecret, "plain-old"}) {
		t.Errorf("AllSecrets %q", got)
	}

	bad := NewWebhookConfig()
	decodeInto(t, "secrets: [whsec_!!]\ntolerance: 0s\nmax_body: 0\ndefault_region: USA\n", bad)
	want := []string{"secrets[0]", "tolerance", "max_body", "default_region"}
	if got := paths(bad.Validate()); !slices.Equal(got, want) {
		t.Errorf("paths %q, want %q", got, want)
	}
	if got := paths(NewWebhookConfig().Validate()); !slices.Equal(got, []string{"secret"}) {
		t.Errorf("no secret: paths %q", got)
	}
}

func TestFormsConfig(t *testing.T) {
	cfg := NewFormsConfig()
	decodeInto(t, `
forms:
  - id: contact
  - id: callback
    kind: callback
    fields: {phone: tel}
    redirect: https://www.example.com/thanks
allowed_origins: [https://www.example.com, "http://localhost:3000/"]
`, cfg)
	if errs := cfg.Validate(); len(errs) > 0 {
		t.Fatalf("valid section: %v", errs)
	}
	if cfg.Honeypot != DefaultHoneypot || cfg.MaxBody != DefaultFormsMaxBody || cfg.MaxFields != DefaultMaxFields {
		t.Errorf("defaults lost: %+v", cfg)
	}
	f := cfg.Forms[1]
	if f.Field("phone") != "tel" || f.Field("email") != "email" || cfg.Forms[0].KindOrDefault() != FormKindForm {
		t.Errorf("field mapping: %+v", f)
	}

	off := NewFormsConfig()
	decodeInto(t, "forms: [{id: a}]\nhoneypot: \"\"\n", off)
	if off.Honeypot != "" || len(off.Validate()) > 0 {
		t.Errorf("honeypot: \"\" should disable it: %+v", off)
	}

	bad := NewFormsConfig()
	decodeInto(t, `
forms:
  - id: contact
    kind: survey
    fields: {fax: f, name: website_url}
    redirect: /thanks
  - id: contact
  - id: "has space"
  - {}
allowed_origins: [https://www.example.com/path]
max_fields: 0
default_region: U1
`, bad)
	want := []string{
		"forms[0].kind", "forms[0].fields.fax", "forms[0].fields.name", "forms[0].redirect",
		"forms[1].id", "forms[2].id", "forms[3].id",
		"allowed_origins[0]", "max_fields", "default_region",
	}
	if got := paths(bad.Validate()); !slices.Equal(got, want) {
		t.Errorf("paths\n got %q\nwant %q", got, want)
	}
	if got := paths(NewFormsConfig().Validate()); !slices.Equal(got, []string{"forms"}) {
		t.Errorf("no forms: paths %q", got)
	}
}
