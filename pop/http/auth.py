"""Who may use the POP, and whether they may write.

Two kinds of bearer token are accepted. ``PROXY_AUTH_TOKEN``, the original program's
shared secret, may read and write. With ``AUTH_JWT_KEY_FILE`` or ``AUTH_JWT_KEY`` set,
Turso's tokens are accepted too, checked as ``sqld --auth-jwt-key-file`` checks them
(``pop.http.jwt_keys``).

Refusals carry sqld's wording: over HTTP ``401 {"error": "Unauthorized: `<reason>`"}``,
in a WebSocket ``hello_error`` ``Authentication failed: <reason>``, with sqld's codes.
"""

from __future__ import annotations

import enum
import hmac
from typing import TYPE_CHECKING

from pop.hrana.errors import HranaError, ProtocolError

if TYPE_CHECKING:
    from pop.http.jwt_keys import JwtVerifier


class Access(enum.Enum):
    """What a caller may do."""

    READ_ONLY = "ro"
    READ_WRITE = "rw"


class Unauthenticated(Exception):
    """A caller that could not be authenticated: sqld's reason and code."""

    def __init__(self, reason: str, code: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code

    def http(self) -> ProtocolError:
        return ProtocolError(f"Unauthorized: `{self.reason}`", code=self.code, status=401)

    def hello(self) -> HranaError:
        return HranaError(f"Authentication failed: {self.reason}", self.code)


_NO_HEADER = ("Expected authorization header but none given", "AUTH_HEADER_NOT_FOUND")
_MALFORMED = ("Auth string does not conform to '<scheme> <token>' form", "AUTH_HEADER_MALFORMED")
_SCHEME = (
    "The authentication scheme in the `Authorization` HTTP header is not supported",
    "AUTH_HEADER_UNSUPPORTED_SCHEME",
)
_NOT_THE_TOKEN = ("The token is not this POP's PROXY_AUTH_TOKEN", "AUTH_TOKEN_INVALID")


class Authenticator:
    """Checks a caller's token: ``PROXY_AUTH_TOKEN``, or a JWT signed by one of the keys."""

    def __init__(self, proxy_token: str, jwt: JwtVerifier | None = None) -> None:
        """``jwt``: None when the POP is given no JWT keys (JWTs are refused)."""
        self._proxy_token = proxy_token.encode()
        self._jwt = jwt

    def from_header(self, header: str | None) -> Access:
        """The access an ``Authorization`` header grants; raises ``Unauthenticated``."""
        if header is None:
            raise Unauthenticated(*_NO_HEADER)
        scheme, space, token = header.partition(" ")
        if not space:
            raise Unauthenticated(*_MALFORMED)
        if scheme.lower() != "bearer":
            raise Unauthenticated(*_SCHEME)
        return self.from_token(token)

    def from_token(self, token: str | None) -> Access:
        """The access a bare token (a WebSocket hello's ``jwt``) grants."""
        if token is None:
            raise Unauthenticated(*_NO_HEADER)
        if hmac.compare_digest(token.encode(), self._proxy_token):
            return Access.READ_WRITE
        if self._jwt is None:
            raise Unauthenticated(*_NOT_THE_TOKEN)
        return self._jwt.access(token)
