#!/usr/bin/env python3
"""A real SMTP server for Stagegate's tests (Debian's python3-aiosmtpd).

Accepted messages are written to DIR as NNNN.eml (the message) and NNNN.json
(the envelope); every DATA attempt is appended to DIR/attempts.log as
"<reply code> <Message-ID>". Recipients steer the answers:

  permfail...@  RCPT answers 550 (a permanent failure, with its text)
  tempfail...@  the first DATA of each Message-ID answers 421, later ones 250
  slowack...@   the first DATA of each Message-ID is stored at once but
                answered (250) only after 60 s: a client killed meanwhile
                does not know the server has it

Usage: smtpsink.py HOST PORT DIR [TLS CERT KEY [USER PASSWORD]], TLS being
starttls (offered, and required before AUTH) or implicit; with USER and
PASSWORD, AUTH PLAIN/LOGIN is required before MAIL. It prints "ready" once it
listens and stops on SIGTERM or SIGINT.
"""
import asyncio
import email
import json
import os
import signal
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class Sink:
    def __init__(self, directory):
        self.dir = directory
        self.n = 0
        self.seen = {}
        self.lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.split("@")[0].lower().startswith("permfail"):
            return "550 5.1.1 <%s>: Recipient address rejected: User unknown in local recipient table" % address
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        mid = email.message_from_bytes(envelope.content).get("Message-ID", "")
        with self.lock:
            tries = self.seen.get(mid, 0)
            self.seen[mid] = tries + 1
            temp = any(r.split("@")[0].lower().startswith("tempfail") for r in envelope.rcpt_tos)
            if temp and tries == 0:
                self.attempt("421", mid)
                return "421 4.3.2 Service shutting down, try again later"
            self.n += 1
            base = os.path.join(self.dir, "%04d" % self.n)
            env = {"mail_from": envelope.mail_from, "rcpt_tos": envelope.rcpt_tos}
            write(base + ".json", json.dumps(env).encode())
            write(base + ".eml", envelope.original_content or envelope.content)
            self.attempt("250", mid)
            slow = tries == 0 and any(r.split("@")[0].lower().startswith("slowack") for r in envelope.rcpt_tos)
        if slow:
            await asyncio.sleep(60)
        return "250 2.0.0 Ok: queued"

    def attempt(self, code, mid):
        with open(os.path.join(self.dir, "attempts.log"), "a") as f:
            f.write("%s %s\n" % (code, mid))


def write(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.rename(tmp, path)


def main():
    host, port, directory = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    kwargs = {}
    if len(sys.argv) > 6:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(sys.argv[5], sys.argv[6])
        if sys.argv[4] == "implicit":
            kwargs["ssl_context"] = ctx
        else:
            kwargs["tls_context"] = ctx
    if len(sys.argv) > 8:
        user, password = sys.argv[7].encode(), sys.argv[8].encode()

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = auth_data.login == user and auth_data.password == password
            return AuthResult(success=ok, handled=False)

        # aiosmtpd counts only STARTTLS as TLS for auth_require_tls; an
        # implicit TLS connection is encrypted from the first byte anyway.
        kwargs.update(authenticator=authenticator, auth_required=True,
                      auth_require_tls=sys.argv[4] != "implicit")
    c = Controller(Sink(directory), hostname=host, port=port, **kwargs)
    c.start()
    print("ready", flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    c.stop()


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    main()
