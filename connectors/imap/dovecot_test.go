package imap

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// dovecotConf is ../shared/recipes/dovecot-test.conf (Dovecot 2.3, as
// Debian's dovecot-imapd installs it) with a Sent folder that carries the
// \Sent special-use attribute.
const dovecotConf = `base_dir = DIR/run
state_dir = DIR/state
log_path = DIR/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:DIR/mail/%u
default_internal_user = dovecot
default_login_user = dovenull
first_valid_uid = 1
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u DIR/users
}
userdb {
  driver = static
  args = uid=dovecot gid=dovecot home=DIR/mail/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = PORT
  }
  inet_listener imaps {
    port = 0
  }
  chroot =
}
service anvil {
  chroot =
}
namespace inbox {
  inbox = yes
  mailbox Sent {
    special_use = \Sent
    auto = create
  }
}
`

// dovecot is a throwaway Dovecot in a temp dir, on a free port, seen as
// one of its accounts (user).
type dovecot struct {
	dir, conf string
	port      int
	user      string
}

// skipWithoutDovecot skips t, saying why, when Dovecot cannot run here.
func skipWithoutDovecot(t testing.TB) {
	t.Helper()
	if _, err := exec.LookPath("dovecot"); err != nil {
		t.Skip("dovecot is not on PATH: the Dovecot tests are skipped (apt-get install dovecot-imapd)")
	}
	if os.Geteuid() != 0 {
		t.Skip("Dovecot tests need root (Dovecot switches to its own users): skipped")
	}
}

// startDovecot starts a Dovecot of t's own (for tests that stop and start
// it), or skips t when Dovecot is not installed.
func startDovecot(t testing.TB) *dovecot {
	t.Helper()
	skipWithoutDovecot(t)
	d, err := launchDovecot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(t) })
	d.addUser(t, testUser)
	return d
}

// maxSharedUsers is how many accounts the shared Dovecot has.
const maxSharedUsers = 100

// shared is the Dovecot most tests share, one account per test; TestMain
// stops it.
var shared struct {
	once sync.Once
	d    *dovecot
	err  error
	n    atomic.Int32
}

// sharedDovecot returns a fresh account on the shared Dovecot, started on
// first use, or skips t when Dovecot is not installed.
func sharedDovecot(t testing.TB) *dovecot {
	t.Helper()
	skipWithoutDovecot(t)
	shared.once.Do(func() {
		dir, err := os.MkdirTemp("", "imap-dovecot-")
		if err != nil {
			shared.err = err
			return
		}
		shared.d, shared.err = launchDovecot(dir)
	})
	if shared.err != nil {
		t.Fatalf("shared dovecot: %v", shared.err)
	}
	n := shared.n.Add(1)
	if n > maxSharedUsers {
		t.Fatalf("more than %d tests use the shared Dovecot", maxSharedUsers)
	}
	d := *shared.d
	d.addUser(t, fmt.Sprintf("u%d@acme.test", n))
	return &d
}

// stopSharedDovecot stops the shared Dovecot and removes its files.
func stopSharedDovecot() {
	if shared.d != nil {
		_ = shared.d.stop()
		_ = os.RemoveAll(shared.d.dir)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	stopSharedDovecot()
	os.Exit(code)
}

// launchDovecot writes the config into dir and starts Dovecot.
func launchDovecot(dir string) (*dovecot, error) {
	// Dovecot's processes run as the dovecot user: it must reach the dir.
	for d := dir; d != os.TempDir() && d != "/" && d != "."; d = filepath.Dir(d) {
		_ = os.Chmod(d, 0o755)
	}
	for _, sub := range []string{"run", "state", "mail"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, err
		}
	}
	if out, err := exec.Command("chown", "-R", "dovecot:dovecot", filepath.Join(dir, "mail"), filepath.Join(dir, "state")).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("chown: %v: %s", err, out)
	}
	// Accounts are listed up front: Dovecot notices a changed users file
	// by its mtime, too coarse for tests adding users quickly.
	users := testUser + ":{PLAIN}" + testPassword + "\n"
	for i := 1; i <= maxSharedUsers; i++ {
		users += fmt.Sprintf("u%d@acme.test:{PLAIN}%s\n", i, testPassword)
	}
	if err := os.WriteFile(filepath.Join(dir, "users"), []byte(users), 0o644); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	d := &dovecot{dir: dir, conf: filepath.Join(dir, "dovecot.conf"), port: port}
	conf := strings.NewReplacer("DIR", dir, "PORT", strconv.Itoa(port)).Replace(dovecotConf)
	if err := os.WriteFile(d.conf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return d, d.start()
}

// addUser makes user (listed in the users file) d's account and gives it
// a Support folder.
func (d *dovecot) addUser(t testing.TB, user string) {
	t.Helper()
	d.user = user
	d.doveadm(t, nil, "mailbox", "create", "-u", user, "Support")
}

func (d *dovecot) Name() string { return "dovecot" }
func (d *dovecot) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(d.port)) }
func (d *dovecot) User() string { return d.user }

// Start starts the server again.
func (d *dovecot) Start(t testing.TB) {
	t.Helper()
	if err := d.start(); err != nil {
		t.Fatal(err)
	}
}

// start runs dovecot and waits until it accepts connections.
func (d *dovecot) start() error {
	// Dovecot daemonizes; its children keep stdout open, so it writes to a
	// file rather than to a pipe that would never close.
	out, err := os.Create(filepath.Join(d.dir, "start.out"))
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.Command("dovecot", "-c", d.conf)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile(out.Name())
		return fmt.Errorf("dovecot: %v: %s", err, b)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", d.Addr(), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(d.dir, "dovecot.log"))
			return fmt.Errorf("dovecot does not listen on %s: %v\n%s", d.Addr(), err, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops the server (its connections are closed).
func (d *dovecot) Stop(t testing.TB) {
	if err := d.stop(); err != nil {
		t.Error(err)
	}
}

// stop kicks every session, stops the master and waits until it is gone.
func (d *dovecot) stop() error {
	// Stopping the master leaves running IMAP sessions alive: kick them
	// first, as a real restart (shutdown_clients) does.
	_ = exec.Command("doveadm", "-c", d.conf, "kick", "*").Run()
	pidFile := filepath.Join(d.dir, "run", "master.pid")
	b, _ := os.ReadFile(pidFile)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	_ = exec.Command("doveadm", "-c", d.conf, "stop").Run()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if pid <= 0 || syscall.Kill(pid, 0) != nil {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("dovecot (pid %d) still runs 10s after stop", pid)
}

func (d *dovecot) doveadm(t testing.TB, stdin []byte, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("doveadm", append([]string{"-c", d.conf}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("doveadm %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return out
}

// Deliver saves raw into folder with doveadm save (as local delivery does).
func (d *dovecot) Deliver(t testing.TB, folder string, raw []byte) {
	t.Helper()
	d.doveadm(t, raw, "save", "-u", d.user, "-m", folder)
}

// DeliverOffline writes raw into INBOX's maildir as an MTA does, which
// works while the IMAP server is stopped.
func (d *dovecot) DeliverOffline(t testing.TB, raw []byte) {
	t.Helper()
	box := filepath.Join(d.dir, "mail", d.user)
	name := fmt.Sprintf("%d.offline%d.test", time.Now().Unix(), time.Now().UnixNano())
	tmp := filepath.Join(box, "tmp", name)
	if err := os.WriteFile(tmp, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chown", "dovecot:dovecot", tmp).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v: %s", err, out)
	}
	if err := os.Rename(tmp, filepath.Join(box, "new", name)); err != nil {
		t.Fatal(err)
	}
}

// Recreate deletes folder and creates it again: a new UIDVALIDITY.
//
// A session that has the folder selected may write its index files into
// the folder's directory right after the delete, so that the create finds
// the mailbox there again: then it is deleted and created once more.
func (d *dovecot) Recreate(t testing.TB, folder string) {
	t.Helper()
	for try := 1; ; try++ {
		d.doveadm(t, nil, "mailbox", "delete", "-u", d.user, folder)
		out, err := exec.Command("doveadm", "-c", d.conf, "mailbox", "create", "-u", d.user, folder).CombinedOutput()
		if err == nil {
			return
		}
		if !strings.Contains(string(out), "already exists") || try == 10 {
			t.Fatalf("doveadm mailbox create %s: %v: %s", folder, err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// DeliverUnreadable writes raw into INBOX's maildir as an MTA does, with
// a mail file Dovecot cannot read (mode 000): asked for the mail, Dovecot
// logs an internal error and ends the session with BYE.
func (d *dovecot) DeliverUnreadable(t testing.TB, raw []byte) (name string) {
	t.Helper()
	box := filepath.Join(d.dir, "mail", d.user)
	now := time.Now()
	name = fmt.Sprintf("%d.M%06dP1.unreadable", now.Unix(), now.Nanosecond()/1000)
	tmp := filepath.Join(box, "tmp", name)
	if err := os.WriteFile(tmp, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("chown", "dovecot:dovecot", tmp).CombinedOutput(); err != nil {
		t.Fatalf("chown: %v: %s", err, out)
	}
	if err := os.Chmod(tmp, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(box, "new", name)); err != nil {
		t.Fatal(err)
	}
	return name
}

// UIDOf returns the UID of the mail whose maildir file is name (as
// DeliverUnreadable returns it), reading no mail file.
func (d *dovecot) UIDOf(t testing.TB, name string) uint32 {
	t.Helper()
	var uid uint32
	for _, line := range strings.Split(string(d.doveadm(t, nil, "fetch", "-u", d.user, "uid guid", "mailbox", "INBOX", "all")), "\n") {
		if v, ok := strings.CutPrefix(line, "uid: "); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
			uid = uint32(n)
		}
		if v, ok := strings.CutPrefix(line, "guid: "); ok && strings.TrimSpace(v) == name {
			return uid
		}
	}
	t.Fatalf("no mail file %s in INBOX", name)
	return 0
}
