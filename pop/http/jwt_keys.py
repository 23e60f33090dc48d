"""Turso's JWTs, checked as ``sqld --auth-jwt-key-file`` checks them (``pop.http.auth``
says when): EdDSA (Ed25519) signatures by any of the given public keys; claim ``a`` is
``"ro"`` (read only), ``"rw"`` or absent (read and write), anything else makes the token
invalid; ``exp`` is honoured with sqld's 60 seconds of leeway, ``nbf`` is not (sqld
ignores it).

A module of its own so that PyJWT and cryptography (about 8 MB of a POP's memory) are
loaded only by a POP given keys (``pop.config``).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from pop.http.auth import Access, Unauthenticated

# jsonwebtoken's default leeway, which sqld keeps: a token 30 s past exp is still accepted.
EXPIRY_LEEWAY_SECONDS = 60
_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z ]+)-----.*?-----END \1-----", re.DOTALL)

_INVALID = ("The JWT is invalid", "AUTH_JWT_INVALID")
_EXPIRED = ("The JWT has expired", "AUTH_JWT_EXPIRED")


class JwtKeyError(ValueError):
    """JWT keys that cannot be read; the message says which and why."""


class JwtVerifier:
    """Checks tokens against the public keys of ``AUTH_JWT_KEY`` and ``AUTH_JWT_KEY_FILE``."""

    def __init__(self, keys: Sequence[Ed25519PublicKey]) -> None:
        self.keys = tuple(keys)

    def access(self, token: str) -> Access:
        """What a token signed by one of the keys grants; raises ``Unauthenticated``."""
        for key in self.keys:
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
