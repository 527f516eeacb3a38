package normalize

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagegate/stagegate/internal/testutil/golden"
)

// FromAPI is golden-tested: each testdata/api/*.json input has a .golden
// file with the event (or, for err_*, the error).
func TestFromAPIGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/api/*.json")
	if len(files) == 0 {
		t.Fatal("no inputs")
	}
	received := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var in APIInput
			if err := json.Unmarshal(raw, &in); err != nil {
				t.Fatal(err)
			}
			var got []byte
			ev, err := FromAPI(in, raw, received, "US")
			if strings.HasPrefix(filepath.Base(f), "err_") {
				if err == nil {
					t.Fatalf("no error for %s", f)
				}
				got = []byte(err.Error() + "\n")
			} else {
				if err != nil {
					t.Fatal(err)
				}
				ev.Raw = nil
				got, _ = json.MarshalIndent(ev, "", "  ")
				got = append(got, '\n')
			}
			golden.Check(t, f, got)
		})
	}
}

func TestMakeIDStable(t *testing.T) {
	cases := []struct{ parts []string }{{[]string{"msg_1"}}, {[]string{"has space", "x"}}, {[]string{""}}}
	for _, c := range cases {
		a, b := MakeID("hooks", c.parts...), MakeID("hooks", c.parts...)
		if a != b || !strings.HasPrefix(a, "hooks:") || strings.ContainsAny(a, " \n") {
			t.Fatalf("MakeID(%q) = %q, %q", c.parts, a, b)
		}
	}
	if Hash("ab", "c") == Hash("a", "bc") {
		t.Fatal("Hash must separate its parts")
	}
}

func TestNormalizeEmail(t *testing.T) {
	for in, want := range map[string]string{
		" Ann@Client.TEST ": "ann@client.test", "Ann <ann@x.test>": "ann@x.test",
		"nope": "", "a@": "", "@b": "", "a b@c.d": "", "a@b.c, d@e.f": "",
	} {
		if got := NormalizeEmail(in); got != want {
			t.Errorf("NormalizeEmail(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestNormalizePhone(t *testing.T) {
	for _, c := range []struct{ in, region, want string }{
		{"+1 (555) 000-1111", "", "+15550001111"}, {"555.000.1111", "US", "+15550001111"},
		{"030 1234567", "DE", "+49301234567"}, {"12", "US", ""}, {"", "US", ""}, {"abc", "US", ""},
	} {
		got, err := NormalizePhone(c.in, c.region)
		if got != c.want || (c.want == "") != (err != nil) {
			t.Errorf("NormalizePhone(%q, %q) = %q, %v; want %q", c.in, c.region, got, err, c.want)
		}
	}
}

func TestTypeValid(t *testing.T) {
	for typ, want := range map[Type]bool{"email.opened": true, "crm.invoice_paid": true, "crm.": false, "crm.A": false, "mail": false, "": false} {
		if typ.Valid() != want {
			t.Errorf("%q.Valid() = %v", typ, !want)
		}
	}
}
