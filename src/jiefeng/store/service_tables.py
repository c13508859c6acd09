"""Tables of the HTTP service (SQLAlchemy Core): API keys, the audit log, uploaded policy
versions and service secrets. Migration 0002 creates them; they live on the same `metadata` as
the event log so one Alembic history covers both.

`audit_log` is append-only: the code has no update or delete path for it, and migration 0002
adds triggers that refuse UPDATE and DELETE in SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text

from jiefeng.store.schema import ID, TIME, metadata

KEY_ID = String(32)
ROLES = String(100)  # comma-separated role names
SHA256_HEX = String(64)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", KEY_ID, primary_key=True),
    Column("name", ID, nullable=False),
    Column("roles", ROLES, nullable=False),
    Column("secret_sha256", SHA256_HEX, nullable=False),  # sha256 of the whole key, hex
    Column("created_at_utc", TIME, nullable=False),
    Column("created_by", ID, nullable=True),
    Column("revoked_at_utc", TIME, nullable=True),
    Column("revoked_by", ID, nullable=True),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("at_utc", TIME, nullable=False),
    Column("request_id", String(128), nullable=False),
    Column("actor_kind", String(16), nullable=False),  # api_key | customer
    Column("actor", ID, nullable=False),  # key name, or the customer's account id
    Column("key_id", KEY_ID, nullable=True),
    Column("roles", ROLES, nullable=False),
    Column("action", String(64), nullable=False),
    Column("method", String(8), nullable=False),
    Column("path", String(512), nullable=False),
    Column("target", ID, nullable=True),
    Column("reason", Text, nullable=True),
    Column("status", Integer, nullable=False),  # the HTTP status the caller got
)
Index("ix_audit_log_actor", audit_log.c.actor, audit_log.c.seq)

policies = Table(
    "policies",
    metadata,
    Column("version", String(64), primary_key=True),
    Column("body", Text, nullable=False),  # the TOML text as uploaded
    Column("sha256", SHA256_HEX, nullable=False),
    Column("uploaded_at_utc", TIME, nullable=False),
    Column("uploaded_by", ID, nullable=False),
    # The active version is the one with the highest activation_seq; NULL = never activated.
    Column("activation_seq", Integer, nullable=True),
    Column("activated_at_utc", TIME, nullable=True),
    Column("activated_by", ID, nullable=True),
)

service_secrets = Table(
    "service_secrets",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("created_at_utc", TIME, nullable=False),
)

# Tokens refused before their expiry (migration 0003): a revoked customer token (`kind`
# "customer", by its `jti`), every customer token of an account issued up to a moment
# ("customer_account", jti = "account:<account_id>", a later revocation moves the moment on),
# and a spent sweep dry-run token ("sweep_dry_run": single-use). The primary key makes
# spending a token atomic: of two concurrent uses, one insert wins.
revoked_tokens = Table(
    "revoked_tokens",
    metadata,
    Column("jti", String(160), primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("account_id", ID, nullable=True),
    Column("revoked_at_utc", TIME, nullable=False),
    Column("revoked_by", ID, nullable=True),
    Column("reason", Text, nullable=True),
)
