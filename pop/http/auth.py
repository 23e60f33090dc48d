"""Who may use the POP, and whether they may write.

Two kinds of bearer token are accepted. ``PROXY_AUTH_TOKEN``, the original program's
shared secret, may read and write. With ``AUTH_JWT_KEY_FILE`` or ``AUTH_JWT_KEY`` set,
Turso's tokens are accepted too, checked as ``sqld --auth-jwt-key-file`` checks them:
EdDSA (Ed25519) signatures by any of the given public keys; claim ``a`` is ``"ro"``
(read only), ``"rw"`` or absent (read and write), anything else makes the token invalid;
``exp`` is honoured with sqld's 60 seconds of leeway, ``nbf`` is not (sqld ignores it).

Refusals carry sqld's wording: over HTTP ``401 {"error": "Unauthorized: `<reason>`"}``,
in a WebSocket ``hello_error`` ``Authentication failed: <reason>``, with sqld's codes.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hmac
import re
from collections.abc import Sequence

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from pop.hrana.errors import HranaError, ProtocolError

# jsonwebtoken's default leeway, which sqld keeps: a token 30 s past exp is still accepted.
EXPIRY_LEEWAY_SECONDS = 60
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z ]+)-----.*?-----END \1-----", re.DOTALL)


class Access(enum.Enum):
    """What a caller may do."""

    READ_ONLY = "ro"
    READ_WRITE = "rw"


class JwtKeyError(ValueError):
    """JWT keys that cannot be read; the message says which and why."""


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
_INVALID = ("The JWT is invalid", "AUTH_JWT_INVALID")
_EXPIRED = ("The JWT has expired", "AUTH_JWT_EXPIRED")
_NOT_THE_TOKEN = ("The token is not this POP's PROXY_AUTH_TOKEN", "AUTH_TOKEN_INVALID")


class Authenticator:
    """Checks a caller's token: ``PROXY_AUTH_TOKEN``, or a JWT signed by one of the keys."""

    def __init__(self, proxy_token: str, jwt_keys: Sequence[Ed25519PublicKey] = ()) -> None:
        self._proxy_token = proxy_token.encode()
        self._keys = tuple(jwt_keys)

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
        if not self._keys:
            raise Unauthenticated(*_NOT_THE_TOKEN)
        return self._from_jwt(token)

    def _from_jwt(self, token: str) -> Access:
        for key in self._keys:
            try:
                claims = jwt.decode(
                    token,
                    key,
                    algorithms=["EdDSA"],
                    leeway=EXPIRY_LEEWAY_SECONDS,
                    options={"verify_nbf": False, "verify_aud": False, "verify_iss": False},
                )
            except jwt.ExpiredSignatureError:
                raise Unauthenticated(*_EXPIRED) from None
            except jwt.InvalidTokenError:
                continue
            break
        else:
            raise Unauthenticated(*_INVALID)
        access = claims.get("a", Access.READ_WRITE.value)
        if access not in (Access.READ_ONLY.value, Access.READ_WRITE.value):
            raise Unauthenticated(*_INVALID)
        return Access(access)


def load_jwt_keys(text: str, source: str) -> list[Ed25519PublicKey]:
    """The Ed25519 public keys in ``text``, as ``sqld --auth-jwt-key-file`` reads them.

    ``text`` holds PEM blocks (``-----BEGIN PUBLIC KEY-----``, several may be
    concatenated) or a key's 32 bytes in URL-safe base64 (one per line here, where sqld
    takes just one). ``source`` names where it came from in errors.
    """
    keys: list[Ed25519PublicKey] = []
    for block in _PEM_BLOCK.finditer(text):
        if block.group(1) != "PUBLIC KEY":
            raise JwtKeyError(f"{source}: a {block.group(1)} block; give the public key only")
        try:
            key = load_pem_public_key(block.group(0).encode())
        except ValueError as exc:
            raise JwtKeyError(f"{source}: a PEM block is not a public key ({exc})") from None
        keys.append(_ed25519(key, source))
    for line in _PEM_BLOCK.sub("", text).split():
        keys.append(_raw_key(line, source))
    if not keys:
        raise JwtKeyError(f"{source}: no key found (expected PEM or URL-safe base64)")
    return keys


def _raw_key(text: str, source: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise JwtKeyError(f"{source}: {text[:12]!r}... is neither PEM nor base64") from None
    if len(raw) != 32:
        raise JwtKeyError(f"{source}: a base64 key must hold 32 bytes, this has {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def _ed25519(key: object, source: str) -> Ed25519PublicKey:
    if not isinstance(key, Ed25519PublicKey):
        raise JwtKeyError(f"{source}: {type(key).__name__} is not an Ed25519 key")
    return key
