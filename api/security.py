"""Password hashing and token material. No database access here."""

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

# OWASP Password Storage Cheat Sheet minimum for Argon2id: m=19 MiB, t=2, p=1.
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, type=Type.ID)

# Verifying against this keeps an unknown e-mail as slow as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))

ACCESS_PREFIX = "rta_"
REFRESH_PREFIX = "rtr_"
_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"  # no 0/O, 1/I/L, U: easy to type
_CODE_LENGTH = 12


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check a password; slow on purpose, so call it off the event loop."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def new_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def keyed_hash(secret_key: str, value: str) -> str:
    """HMAC-SHA256 of a token, code or throttle key: what the database stores instead."""
    return hmac.new(secret_key.encode(), value.encode(), hashlib.sha256).hexdigest()


def new_enrolment_code() -> str:
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(_CODE_LENGTH))
    return "-".join(raw[i : i + 4] for i in range(0, _CODE_LENGTH, 4))


def normalise_enrolment_code(code: str) -> str:
    """What the patient typed, without separators and case, as it was issued."""
    return "".join(ch for ch in code.upper() if ch.isalnum())
