// Package netx holds small network helpers shared by connectors and actions.
package netx

import (
	"net"
	"strings"
)

// IsLoopback reports whether host is localhost or a loopback IP: the only
// hosts a client may talk to in plaintext with a password (IMAP tls: none,
// SMTP tls: none) unless the config says allow_plaintext.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
