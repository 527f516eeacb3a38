package compose

import (
	"encoding/json"
	"fmt"
	"strings"

	gomail "github.com/emersion/go-message/mail"
)

// AddressList is a list of RFC 5322 addresses given in JSON either as one
// string ("Ann <ann@client.test>, bob@client.test") or as an array of strings.
type AddressList []string

// UnmarshalJSON accepts a string or an array of strings.
func (a *AddressList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = AddressList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("want a string or an array of strings")
	}
	*a = many
	return nil
}

// parse returns the addresses; field names the list in errors.
func (a AddressList) parse(field string) ([]*gomail.Address, error) {
	var out []*gomail.Address
	for _, s := range a {
		if strings.TrimSpace(s) == "" {
			continue
		}
		l, err := gomail.ParseAddressList(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %q is not an address list", ErrBadRequest, field, s)
		}
		out = append(out, l...)
	}
	return out, nil
}
