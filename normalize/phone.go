package normalize

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// DefaultRegion is the region of phone numbers written without a country
// code when neither a connector's default_region nor the engine's is set.
const DefaultRegion = "US"

var regionPattern = regexp.MustCompile(`^[A-Za-z]{2}$`)

// ValidRegion reports whether s is a two-letter region code such as US.
func ValidRegion(s string) bool { return regionPattern.MatchString(s) }

// Region is the region a connector normalizes phone numbers with: its own
// default_region, else the engine's (connectors.Deps.Region), else
// DefaultRegion; upper-cased.
func Region(own, engine string) string {
	for _, r := range []string{own, engine} {
		if r != "" {
			return strings.ToUpper(r)
		}
	}
	return DefaultRegion
}

// ErrBadPhone is returned for input that is not a valid phone number.
var ErrBadPhone = errors.New("not a valid phone number")

// NormalizePhone parses s as a phone number (with defaultRegion, such as
// "US", for numbers written without a country code) and returns it in E.164.
func NormalizePhone(s, defaultRegion string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", fmt.Errorf("phone %q: %w", s, ErrBadPhone)
	}
	if defaultRegion == "" {
		defaultRegion = DefaultRegion
	}
	n, err := phonenumbers.Parse(s, strings.ToUpper(defaultRegion))
	if err != nil {
		return "", fmt.Errorf("phone %q: %w: %v", s, ErrBadPhone, err)
	}
	if !phonenumbers.IsPossibleNumber(n) {
		return "", fmt.Errorf("phone %q: %w", s, ErrBadPhone)
	}
	return phonenumbers.Format(n, phonenumbers.E164), nil
}
