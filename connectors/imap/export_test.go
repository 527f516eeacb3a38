package imap

import "testing"

// Exported for the end-to-end tests of package imap_test.

// MailServer is a test IMAP server.
type MailServer = mailServer

// TestUser and TestPassword log in to the test servers.
const (
	TestUser     = testUser
	TestPassword = testPassword
)

// StartMemServer starts go-imap's memory server; StartDovecot a real
// Dovecot (or skips the test when it is not installed).
var (
	StartMemServer = func(t testing.TB) MailServer { return startMemServer(t) }
	StartDovecot   = func(t testing.TB) MailServer { return sharedDovecot(t) }
	NewMail        = newMail
	FolderFlags    = folderFlags
)
