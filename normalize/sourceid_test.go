package normalize

import (
	"regexp"
	"strings"
	"testing"
)

// ValidSourceID is a byte loop; the regular expression it replaced stays
// here as its specification.
func TestValidSourceIDMatchesItsSpec(t *testing.T) {
	spec := regexp.MustCompile(`^[A-Za-z0-9._:@+/=-]{1,200}$`)
	cases := []string{"", "a", "A9._:@+/=-", "b1-42", "with space", "tab\t", "ünï", "a,b", "a\x00b", "#", "%41",
		strings.Repeat("x", 200), strings.Repeat("x", 201), strings.Repeat("é", 50), "msg<1@x>", "a*b", "a\\b"}
	for c := 0; c < 256; c++ {
		cases = append(cases, string([]byte{byte(c)}), "id"+string([]byte{byte(c)}))
	}
	for _, s := range cases {
		if got, want := ValidSourceID(s), spec.MatchString(s); got != want {
			t.Errorf("ValidSourceID(%q) = %v, the spec says %v", s, got, want)
		}
	}
}
