package config

import (
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/stagegate/stagegate/validate"
)

var envForTests = map[string]string{
	"TOKEN": "s3cr3t",
	"EMPTY": "",
	"PORT":  "8080",
	"NULL":  "null",
	"REF":   "${TOKEN}",
}

func TestExpandString(t *testing.T) {
	tests := []struct {
		in, want string
		problems []string
	}{
		{"plain", "plain", nil},
		{"${TOKEN}", "s3cr3t", nil},
		{"Bearer ${TOKEN}!", "Bearer s3cr3t!", nil},
		{"${TOKEN}${PORT}", "s3cr3t8080", nil},
		{"a${EMPTY}b", "ab", nil},
		{"${REF}", "${TOKEN}", nil},      // values are not expanded again
		{"$$${TOKEN}", "$${TOKEN}", nil}, // "$" then an escaped "${"
		{"$${TOKEN}", "${TOKEN}", nil},
		{"cost: $5, $$ and $", "cost: $5, $$ and $", nil},
		{"$TOKEN", "$TOKEN", nil},
		{"${MISSING}", "", []string{"undefined environment variable MISSING"}},
		{"x${MISSING}y${OTHER}z", "xyz", []string{"undefined environment variable MISSING", "undefined environment variable OTHER"}},
		{"${}", "", []string{`invalid environment variable name ""`}},
		{"${A-B}", "", []string{`invalid environment variable name "A-B"`}},
		{"${1X}", "", []string{`invalid environment variable name "1X"`}},
		{"a${TOKEN", "a${TOKEN", []string{`unterminated "${" (write "$${" for a literal "${")`}},
	}
	for _, tt := range tests {
		got, problems := expandString(tt.in, lookup(envForTests))
		if got != tt.want || !reflect.DeepEqual(problems, tt.problems) {
			t.Errorf("expandString(%q) = %q, %q; want %q, %q", tt.in, got, problems, tt.want, tt.problems)
		}
	}
}

// envTarget is decoded from the expanded trees of TestExpandEnv.
type envTarget struct {
	Port  int               `yaml:"port"`
	Name  string            `yaml:"name"`
	On    bool              `yaml:"on"`
	Ratio *float64          `yaml:"ratio"`
	List  []string          `yaml:"list"`
	Attrs map[string]string `yaml:"attrs"`
}

func TestExpandEnv(t *testing.T) {
	float := func(f float64) *float64 { return &f }
	tests := []struct {
		name, yaml string
		want       envTarget
		errs       string
	}{
		{"plain int", "port: ${PORT}", envTarget{Port: 8080}, ""},
		{"quoted stays a string", `name: "${PORT}"`, envTarget{Name: "8080"}, ""},
		{"plain string", "name: ${TOKEN}", envTarget{Name: "s3cr3t"}, ""},
		{"null value stays a string", "name: ${NULL}", envTarget{Name: "null"}, ""},
		{"empty value", "name: ${EMPTY}\nratio: ${EMPTY}", envTarget{}, ""},
		{"explicit tag kept", "name: !!str ${PORT}", envTarget{Name: "8080"}, ""},
		{"float", "ratio: ${PORT}.5", envTarget{Ratio: float(8080.5)}, ""},
		{"list items", "list: [a, '${TOKEN}', \"x-${PORT}\"]", envTarget{List: []string{"a", "s3cr3t", "x-8080"}}, ""},
		{"keys are not expanded", "attrs:\n  ${TOKEN}: ${TOKEN}", envTarget{Attrs: map[string]string{"${TOKEN}": "s3cr3t"}}, ""},
		{"anchor expanded once", "name: &n ${TOKEN}\nlist: [*n, *n]", envTarget{Name: "s3cr3t", List: []string{"s3cr3t", "s3cr3t"}}, ""},
		{"block scalar", "name: |-\n  key=${TOKEN}", envTarget{Name: "key=s3cr3t"}, ""},
		{"undefined paths", "name: ${NOPE}\nlist: [ok, '${NOPE2}']\nattrs: {a: {b: '${X}'}}",
			envTarget{List: []string{"ok", ""}},
			"name: undefined environment variable NOPE\n" +
				"list[1]: undefined environment variable NOPE2\n" +
				"attrs.a.b: undefined environment variable X"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(tt.yaml), &doc); err != nil {
				t.Fatal(err)
			}
			var errs validate.Errors
			expandEnv(&doc, "", lookup(envForTests), &errs)
			if got := errs.Error(); got != tt.errs {
				t.Errorf("errors:\n%s\nwant:\n%s", got, tt.errs)
			}
			if strings.Contains(tt.yaml, "attrs: {a:") {
				return // does not fit envTarget
			}
			var got envTarget
			if err := doc.Decode(&got); err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("decoded %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseEnvErrorPaths(t *testing.T) {
	in := minimal + "connectors:\n  - name: h\n    type: webhook\n    secret: ${WEBHOOK_SECRET}\n"
	_, err := Parse([]byte(in), testKinds, testActions, lookup(nil))
	want := "connectors[0].secret: undefined environment variable WEBHOOK_SECRET\n"
	if got := errorLines(t, err); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
	cfg, err := Parse([]byte(in), testKinds, testActions, lookup(map[string]string{"WEBHOOK_SECRET": "from-env"}))
	if err != nil {
		t.Fatal(err)
	}
	if s := cfg.Connectors[0].Settings.(*fakeWebhook).Secret; s != "from-env" {
		t.Errorf("secret = %q", s)
	}
}
