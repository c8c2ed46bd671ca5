"""The triage app's defences: response headers, the access token, CSRF tokens, the Host check.

Every page shows strings chosen by the authors of the packages under review, so the pages are
built to be harmless even if one of those strings slipped through unescaped: the
Content-Security-Policy allows no script at all, no inline style, no framing and no form target
but this app.

Access: bound to a loopback address the app serves whoever can reach the port on this machine;
bound elsewhere it requires a token (`--token` / `$MALSEQ_SERVE_TOKEN`), given once as
`?token=` (then kept in an HttpOnly, SameSite=Strict cookie) or as `Authorization: Bearer`.
The Host header must name a loopback host when bound to one, which stops DNS rebinding.

Labels change the database, so they are POSTs carrying a synchronizer token: an HMAC, under a
key made at start-up, of a random per-browser session id kept in a SameSite=Strict cookie. A
page of another site can neither read the token nor send the cookie; a POST whose `Origin` or
`Sec-Fetch-Site` says it comes from elsewhere is refused as well.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass

CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
                           "frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    # not no-referrer: with it browsers send `Origin: null` on this app's own form posts, which the check refuses
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}
SESSION_COOKIE = "malseq_session"
TOKEN_COOKIE = "malseq_token"
REVIEWER_COOKIE = "malseq_reviewer"
CSRF_FIELD = "csrf"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")


def is_loopback(host: str) -> bool:
    if host.strip("[]") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


@dataclass(frozen=True)
class Guard:
    """The per-process secrets: the CSRF key and the access token (None on loopback without one)."""

    csrf_key: bytes
    token: str | None

    @classmethod
    def create(cls, token: str | None) -> Guard:
        return cls(secrets.token_bytes(32), token or None)

    @staticmethod
    def new_session() -> str:
        return secrets.token_urlsafe(32)

    def csrf_token(self, session: str) -> str:
        return hmac.new(self.csrf_key, session.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: str | None, submitted: str | None) -> bool:
        if not session or not submitted:
            return False
        return hmac.compare_digest(self.csrf_token(session), submitted)

    def token_ok(self, presented: str | None) -> bool:
        if self.token is None:
            return True
        return presented is not None and hmac.compare_digest(presented.encode(), self.token.encode())
