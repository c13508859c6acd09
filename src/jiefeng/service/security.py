"""Credentials: API keys for systems and staff, signed tokens for customers, and the secret
that signs them.

* An API key is `jf_<key_id>_<secret>`: 43 random URL-safe characters of secret (256 bits).
  Only the sha256 of the whole key is stored, so a leaked table does not leak keys; a
  high-entropy random key needs no slow password hash. Keys are compared with
  `hmac.compare_digest`. A key carries one or more roles and a name; the name is the `actor`
  recorded on the events and audit entries the key causes.
* A customer token is a JWT (HS256) carrying one account id (`sub`), a token id (`jti`) and an
  expiry (`exp`). It can read only that account and submit appeals for it. Operators revoke a
  token by its id, or every token of an account issued so far (`revoked_tokens`).
* The signing secret comes from `JIEFENG_TOKEN_SECRET` when set (share it with the system that
  signs customers in; nothing is then stored), else a secret generated once and kept in the
  `service_secrets` table serves as the embedded default.
* Each event type needs one role to be sent over HTTP (`EVENT_ROLES`, the one table of it).
* Failed credentials are counted per client: see `credential_limits`.

Time is an input (`now`), as everywhere: token expiry is checked against the service clock.

Why one long module: every credential check (keys, customer tokens, roles per event type,
failed-credential limits) in one file, so a security review reads one file.
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

from jiefeng.domain import event_kinds
from jiefeng.domain.events import EVENT_TYPES, OPERATOR_TYPES
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


class LastAdmin(ValueError):
    """Revoking this key would leave no active admin key (HTTP 409)."""


# --- who may send which event ------------------------------------------------------------------

# The role an API key needs to send each event type over HTTP, whichever endpoint carries it
# (POST /v1/events or a dedicated one). admin may send every type. Customer activity and
# outside facts come from the systems that hold an `ingest` key; an operator command needs
# `operator`, an appeal decision `reviewer`. `appeal_submitted` is the customer's own act: the
# customer's token on POST /v1/accounts/{id}/appeals, or an `ingest` key relaying it from the
# system the customer used.
EVENT_ROLES: dict[str, str] = {
    **{event_type: "ingest" for event_type in EVENT_TYPES if event_type not in OPERATOR_TYPES},
    **{event_type: "operator" for event_type in OPERATOR_TYPES},
    "appeal_decided": "reviewer",
}
# Commands (a human decision in them): audited whichever endpoint they come through.
COMMAND_TYPES = event_kinds.COMMAND_TYPES  # the operator events and appeals
assert COMMAND_TYPES == {*OPERATOR_TYPES, "appeal_submitted"}
assert set(EVENT_ROLES) == set(EVENT_TYPES), "every event type has its role"


def event_refusal(principal: Principal, raw: Any) -> str | None:
    """Why `principal` may not send this event (a reason naming the role), or None.

    Events that are not objects or have no known type are left to validation, which names
    the problem; only a known type can need a role."""
    if not isinstance(raw, dict) or raw.get("type") not in EVENT_ROLES:
        return None
    needed = EVENT_ROLES[raw["type"]]
    if principal.is_customer or not principal.has_role(needed):
        held = ", ".join(sorted(principal.roles)) or "none"
        return f"a {raw['type']} event needs role {needed} or admin; this key has {held}"
    return None


def actor_refusal(principal: Principal, raw: Any) -> str | None:
    """An operator command's `actor` is the caller: a body naming someone else is refused
    (not silently rewritten, so a producer that believes it sets `actor` learns otherwise)."""
    if not isinstance(raw, dict) or raw.get("type") not in OPERATOR_TYPES:
        return None
    given = raw.get("actor")
    if given is not None and given != principal.name:
        return (f"must be the calling key's name {principal.name!r} or left out; it is set "
                "from the credential")
    return None


def with_actor(principal: Principal, raw: Any) -> Any:
    """The event with `actor` = the authenticated principal, for operator commands."""
    if isinstance(raw, dict) and raw.get("type") in OPERATOR_TYPES:
        return {**raw, "actor": principal.name}
    return raw




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
        """Revoke a key (idempotent: a second revoke keeps the first time). None if unknown.
        LastAdmin if it is the only active admin key: revoking it would lock every admin out
        (and the first admin key can only be made again from the command line)."""
        self._rows.pop(key_id, None)
        with self.store.transaction() as connection:
            row = connection.execute(
                select(st.api_keys).where(st.api_keys.c.key_id == key_id)).first()
            if row is None:
                return None
            if row.revoked_at_utc is None and "admin" in row.roles.split(","):
                # FOR UPDATE (PostgreSQL): two admins revoking each other at once cannot both
                # see the other still active. SQLite serializes writers already.
                active = connection.execute(
                    select(st.api_keys.c.key_id, st.api_keys.c.roles)
                    .where(st.api_keys.c.revoked_at_utc.is_(None)).with_for_update()).all()
                admins = [k for k, roles in active if "admin" in roles.split(",")]
                if admins == [key_id]:
                    raise LastAdmin("key_id: this is the last active admin key; create another "
                                    "admin key before revoking it")
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


CUSTOMER_TOKEN = "customer"
ACCOUNT_TOKENS = "customer_account"
SWEEP_DRY_RUN_TOKEN = "sweep_dry_run"
JTI_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
REVOCATION_CACHE_SECONDS = 1.0  # another process's revocation takes effect within this


def _account_key(account_id: str) -> str:
    return f"account:{account_id}"


@dataclass(frozen=True)
class CustomerClaims:
    account_id: str
    jti: str
    issued_at: int  # seconds since the epoch
    expires_at: int


class Revocations:
    """The revocation list (`revoked_tokens`): revoked customer tokens, accounts whose tokens
    issued up to a moment are revoked, and spent single-use tokens."""

    def __init__(self, store: SqlStore):
        self.store = store
        # (jti, account) -> ((token revoked?, account cutoff seconds or None), fetched at)
        self._seen: dict[tuple[str, str], tuple[tuple[bool, float | None], float]] = {}

    def customer_status(self, jti: str, account_id: str) -> tuple[bool, float | None]:
        """(this token is revoked, tokens of the account issued at or before this are)."""
        cache_key = (jti, account_id)
        cached = self._seen.get(cache_key)
        if cached is not None and time.monotonic() - cached[1] < REVOCATION_CACHE_SECONDS:
            return cached[0]
        rt = st.revoked_tokens
        with self.store.read() as connection:
            rows = connection.execute(
                select(rt.c.jti, rt.c.revoked_at_utc)
                .where(rt.c.jti.in_([jti, _account_key(account_id)]))).all()
        revoked, cutoff = False, None
        for row_jti, at_utc in rows:
            if row_jti == jti:
                revoked = True
            else:
                cutoff = t.parse_utc_text(at_utc).timestamp()
        if len(self._seen) > 10_000:
            self._seen.clear()
        self._seen[cache_key] = ((revoked, cutoff), time.monotonic())
        return revoked, cutoff

    def revoke_customer(self, account_id: str, jti: str | None, revoked_by: str,
                        reason: str | None, now: dt.datetime) -> dict[str, Any]:
        """Revoke one token (`jti`), or with jti None every token of the account issued up to
        `now`. Revoking a token twice keeps the first time; revoking an account again moves
        its moment to `now`."""
        kind, key = (CUSTOMER_TOKEN, jti) if jti else (ACCOUNT_TOKENS, _account_key(account_id))
        rt = st.revoked_tokens
        values = {"kind": kind, "account_id": account_id, "revoked_at_utc": t.utc_text(now),
                  "revoked_by": revoked_by, "reason": reason}
        with self.store.transaction() as connection:
            row = connection.execute(select(rt).where(rt.c.jti == key)).first()
            if row is None:
                connection.execute(rt.insert().values(jti=key, **values))
            elif kind == ACCOUNT_TOKENS:
                connection.execute(rt.update().where(rt.c.jti == key).values(**values))
            row = connection.execute(select(rt).where(rt.c.jti == key)).one()
        self._seen.clear()
        return {"account_id": row.account_id, "jti": jti,
                "scope": "token" if jti else "all_tokens_issued_so_far",
                "revoked_at": t.parse_utc_text(row.revoked_at_utc).isoformat(),
                "revoked_by": row.revoked_by}

    def spend(self, jti: str, kind: str, spent_by: str, now: dt.datetime) -> bool:
        """Mark a single-use token used. False if it was used already (this call lost)."""
        try:
            with self.store.transaction() as connection:
                connection.execute(st.revoked_tokens.insert().values(
                    jti=f"{kind}:{jti}", kind=kind, revoked_at_utc=t.utc_text(now),
                    revoked_by=spent_by))
        except IntegrityError:
            return False
        return True

    def unspend(self, jti: str, kind: str) -> None:
        """Give a token back when the command it was spent on did not happen."""
        with self.store.transaction() as connection:
            connection.execute(st.revoked_tokens.delete().where(
                st.revoked_tokens.c.jti == f"{kind}:{jti}"))


class CustomerTokens:
    def __init__(self, secret: bytes, revocations: Revocations | None = None):
        self._key = derive_key(secret, "customer-token")
        self.revocations = revocations

    def issue(self, account_id: str, now: dt.datetime, ttl_hours: int = 24) -> str:
        if not 1 <= ttl_hours <= MAX_TOKEN_TTL_HOURS:
            raise ValueError(f"ttl_hours: must be 1-{MAX_TOKEN_TTL_HOURS}")
        if not NAME_PATTERN.match(account_id):
            raise ValueError("account: 1-128 characters without spaces")
        issued = int(now.timestamp())
        claims = {"iss": TOKEN_ISSUER, "typ": "customer", "sub": account_id,
                  "jti": secrets.token_urlsafe(16), "iat": issued,
                  "exp": issued + ttl_hours * 3600}
        return jwt.encode(claims, self._key, algorithm=TOKEN_ALGORITHM)

    def claims(self, token: str) -> CustomerClaims:
        """The signed claims, expired or not (revoking an expired token is harmless)."""
        try:
            # Expiry is checked in verify against the service clock, not the machine's.
            claims = jwt.decode(
                token, self._key, algorithms=[TOKEN_ALGORITHM], issuer=TOKEN_ISSUER,
                options={"verify_exp": False, "verify_iat": False, "verify_nbf": False,
                         "require": ["sub", "exp", "iat", "iss", "jti"]})
        except jwt.PyJWTError as error:
            raise CredentialInvalid(f"invalid customer token: {error}") from None
        if (claims.get("typ") != "customer" or not isinstance(claims["sub"], str)
                or not isinstance(claims["jti"], str) or not JTI_PATTERN.match(claims["jti"])
                or not isinstance(claims["iat"], int) or not isinstance(claims["exp"], int)):
            raise CredentialInvalid("invalid customer token")
        return CustomerClaims(claims["sub"], claims["jti"], claims["iat"], claims["exp"])

    def verify(self, token: str, now: dt.datetime) -> Principal:
        claims = self.claims(token)
        if claims.expires_at <= now.timestamp():
            raise CredentialInvalid("customer token expired")
        if self.revocations is not None:
            revoked, cutoff = self.revocations.customer_status(claims.jti, claims.account_id)
            if revoked or (cutoff is not None and claims.issued_at <= cutoff):
                raise CredentialInvalid("customer token revoked")
        account_id = claims.account_id
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
