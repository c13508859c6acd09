"""Credentials: API keys for systems and staff, signed tokens for customers, and the secret
that signs them.

* An API key is `jf_<key_id>_<secret>`: 43 random URL-safe characters of secret (256 bits).
  Only the sha256 of the whole key is stored, so a leaked table does not leak keys; a
  high-entropy random key needs no slow password hash. Keys are compared with
  `hmac.compare_digest`. A key carries one or more roles and a name; the name is the `actor`
  recorded on the events and audit entries the key causes.
* A customer token is a JWT (HS256) carrying one account id (`sub`) and an expiry. It can read
  only that account and submit appeals for it.
* The signing secret comes from `JIEFENG_TOKEN_SECRET` when set (share it with the system that
  signs customers in), else it is generated once and kept in the `service_secrets` table.

Time is an input (`now`), as everywhere: token expiry is checked against the service clock.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import os
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from jiefeng.store import schema as t
from jiefeng.store import service_tables as st
from jiefeng.store.sql import SqlStore

ROLES = ("ingest", "reviewer", "operator", "admin")
KEY_PREFIX = "jf_"
TOKEN_SECRET_ENV = "JIEFENG_TOKEN_SECRET"
TOKEN_SECRET_NAME = "customer_token_secret"
TOKEN_ISSUER = "jiefeng"
TOKEN_ALGORITHM = "HS256"
MAX_TOKEN_TTL_HOURS = 24 * 30  # a customer token lives at most 30 days
MIN_SECRET_CHARS = 32
NAME_PATTERN = re.compile(r"^\S{1,128}$")  # key names become event actors (Identifier)
_KEY_PATTERN = re.compile(r"^jf_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


class CredentialInvalid(ValueError):
    """The credential is missing, malformed, unknown, revoked or expired (HTTP 401)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling. `name` is the actor recorded on events and in the audit log."""

    kind: str  # "api_key" | "customer"
    name: str
    roles: frozenset[str]
    key_id: str | None = None
    account_id: str | None = None  # customers only

    @property
    def is_customer(self) -> bool:
        return self.kind == "customer"

    def has_role(self, *roles: str) -> bool:
        """admin may do everything a role may; customers have no roles."""
        return bool(self.roles & ({*roles, "admin"}))


@dataclass(frozen=True)
class NewKey:
    key_id: str
    name: str
    roles: tuple[str, ...]
    created_at: dt.datetime
    key: str  # shown once, never stored


def _sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_roles(roles: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Validated, deduplicated, in canonical order; ValueError names the bad role."""
    if not roles:
        raise ValueError("roles: give at least one role")
    unknown = [r for r in roles if r not in ROLES]
    if unknown:
        raise ValueError(f"roles: unknown role {unknown[0]!r}; one of {', '.join(ROLES)}")
    return tuple(r for r in ROLES if r in roles)


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise ValueError("name: 1-128 characters without spaces")
    return name


KEY_CACHE_SECONDS = 1.0  # another process's revocation takes effect within this


class ApiKeys:
    def __init__(self, store: SqlStore):
        self.store = store
        # key_id -> (row, fetched at): a request does not pay a database read for its key.
        # Revocations in this process drop the entry at once; in another worker, within
        # KEY_CACHE_SECONDS.
        self._rows: dict[str, tuple[Any, float]] = {}

    def _row(self, key_id: str) -> Any:
        cached = self._rows.get(key_id)
        if cached is not None and time.monotonic() - cached[1] < KEY_CACHE_SECONDS:
            return cached[0]
        with self.store.read() as connection:
            row = connection.execute(
                select(st.api_keys).where(st.api_keys.c.key_id == key_id)).first()
        if row is not None:
            if len(self._rows) > 10_000:
                self._rows.clear()
            self._rows[key_id] = (row, time.monotonic())
        return row

    def create(self, roles: list[str] | tuple[str, ...], name: str | None, created_by: str | None,
               now: dt.datetime) -> NewKey:
        roles = check_roles(roles)
        key_id = secrets.token_hex(8)
        name = check_name(name) if name is not None else f"{roles[0]}-{key_id}"
        key = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
        assert _KEY_PATTERN.match(key), "key format and parser agree"
        with self.store.transaction() as connection:
            connection.execute(st.api_keys.insert().values(
                key_id=key_id, name=name, roles=",".join(roles), secret_sha256=_sha256_hex(key),
                created_at_utc=t.utc_text(now), created_by=created_by))
        return NewKey(key_id, name, roles, now, key)

    def verify(self, key: str) -> Principal:
        match = _KEY_PATTERN.match(key)
        if match is None:
            raise CredentialInvalid("not an API key")
        row = self._row(match.group(1))
        stored = row.secret_sha256 if row is not None else "0" * 64
        # Compare even for an unknown id, so timing says nothing about which ids exist.
        if not hmac.compare_digest(stored, _sha256_hex(key)) or row is None:
            raise CredentialInvalid("unknown API key")
        if row.revoked_at_utc is not None:
            raise CredentialInvalid("revoked API key")
        return Principal("api_key", row.name, frozenset(row.roles.split(",")), row.key_id)

    def list(self) -> list[dict[str, Any]]:
        with self.store.read() as connection:
            rows = connection.execute(
                select(st.api_keys).order_by(st.api_keys.c.created_at_utc, st.api_keys.c.key_id))
            return [_key_dict(row) for row in rows]

    def get(self, key_id: str) -> dict[str, Any] | None:
        with self.store.read() as connection:
            row = connection.execute(
                select(st.api_keys).where(st.api_keys.c.key_id == key_id)).first()
        return _key_dict(row) if row is not None else None

    def revoke(self, key_id: str, revoked_by: str, now: dt.datetime) -> dict[str, Any] | None:
        """Revoke a key (idempotent: a second revoke keeps the first time). None if unknown."""
        self._rows.pop(key_id, None)
        with self.store.transaction() as connection:
            row = connection.execute(
                select(st.api_keys).where(st.api_keys.c.key_id == key_id)).first()
            if row is None:
                return None
            if row.revoked_at_utc is None:
                connection.execute(
                    st.api_keys.update().where(st.api_keys.c.key_id == key_id)
                    .values(revoked_at_utc=t.utc_text(now), revoked_by=revoked_by))
        self._rows.pop(key_id, None)
        return self.get(key_id)


def _key_dict(row: Any) -> dict[str, Any]:
    return {
        "key_id": row.key_id,
        "name": row.name,
        "roles": row.roles.split(","),
        "created_at": t.parse_utc_text(row.created_at_utc).isoformat(),
        "created_by": row.created_by,
        "revoked_at": (t.parse_utc_text(row.revoked_at_utc).isoformat()
                       if row.revoked_at_utc else None),
        "revoked_by": row.revoked_by,
    }


# --- the signing secret ----------------------------------------------------------------------


def signing_secret(store: SqlStore, now: dt.datetime) -> bytes:
    """`JIEFENG_TOKEN_SECRET` if set, else the stored secret, generated on first use."""
    configured = os.environ.get(TOKEN_SECRET_ENV)
    if configured:
        if len(configured) < MIN_SECRET_CHARS:
            raise ValueError(f"{TOKEN_SECRET_ENV}: use at least {MIN_SECRET_CHARS} characters")
        return configured.encode("utf-8")
    query = select(st.service_secrets.c.value).where(
        st.service_secrets.c.name == TOKEN_SECRET_NAME)
    with store.read() as connection:
        value = connection.execute(query).scalar()
    if value is None:
        try:
            with store.transaction() as connection:
                connection.execute(st.service_secrets.insert().values(
                    name=TOKEN_SECRET_NAME, value=secrets.token_urlsafe(48),
                    created_at_utc=t.utc_text(now)))
        except IntegrityError:
            pass  # another worker made it first; use theirs
        with store.read() as connection:
            value = connection.execute(query).scalar_one()
    return value.encode("utf-8")


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A separate key per use of the one secret (customer tokens, sweep dry-run tokens)."""
    return hmac.new(secret, purpose.encode("utf-8"), hashlib.sha256).digest()


# --- customer tokens -------------------------------------------------------------------------


class CustomerTokens:
    def __init__(self, secret: bytes):
        self._key = derive_key(secret, "customer-token")

    def issue(self, account_id: str, now: dt.datetime, ttl_hours: int = 24) -> str:
        if not 1 <= ttl_hours <= MAX_TOKEN_TTL_HOURS:
            raise ValueError(f"ttl_hours: must be 1-{MAX_TOKEN_TTL_HOURS}")
        if not NAME_PATTERN.match(account_id):
            raise ValueError("account: 1-128 characters without spaces")
        issued = int(now.timestamp())
        claims = {"iss": TOKEN_ISSUER, "typ": "customer", "sub": account_id, "iat": issued,
                  "exp": issued + ttl_hours * 3600}
        return jwt.encode(claims, self._key, algorithm=TOKEN_ALGORITHM)

    def verify(self, token: str, now: dt.datetime) -> Principal:
        try:
            # Expiry is checked below against the service clock, not the machine's.
            claims = jwt.decode(
                token, self._key, algorithms=[TOKEN_ALGORITHM], issuer=TOKEN_ISSUER,
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False,
                         "require": ["sub", "exp", "iat", "iss"]})
        except jwt.PyJWTError as error:
            raise CredentialInvalid(f"invalid customer token: {error}") from None
        if claims.get("typ") != "customer" or not isinstance(claims["sub"], str):
            raise CredentialInvalid("invalid customer token")
        if not isinstance(claims["exp"], int) or claims["exp"] <= now.timestamp():
            raise CredentialInvalid("customer token expired")
        account_id = claims["sub"]
        return Principal("customer", account_id, frozenset(), None, account_id)


class Authenticator:
    """Turns a bearer credential into a Principal, or raises CredentialInvalid."""

    def __init__(self, keys: ApiKeys, tokens: CustomerTokens):
        self.keys = keys
        self.tokens = tokens

    def authenticate(self, credential: str, now: dt.datetime) -> Principal:
        if credential.startswith(KEY_PREFIX):
            return self.keys.verify(credential)
        return self.tokens.verify(credential, now)
