package normalize

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

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
		defaultRegion = "US"
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
