"""Policy versions kept in the database: upload (validated), activate, list, and the active one.

The engine uses the active version (the last one activated); with none activated it uses the
built-in default policy. A version string names exactly one text: uploading a different text
under a known version is refused, uploading the same text again is harmless.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from jiefeng.policy.schema import Policy, default_policy, parse_policy_text
from jiefeng.store import schema as t
from jiefeng.store import service_tables as st
from jiefeng.store.sql import SqlStore

MAX_POLICY_CHARS = 256 * 1024
_CACHE_LIMIT = 32

_parsed: dict[str, Policy] = {}  # sha256 of the text -> parsed policy
_parsed_lock = threading.Lock()


class PolicyConflict(ValueError):
    def __init__(self, field_name: str, reason: str):
        self.field = field_name
        self.reason = reason
        super().__init__(f"{field_name}: {reason}")


class PolicyNotFound(LookupError):
    pass


@dataclass(frozen=True)
class Uploaded:
    record: dict[str, Any]
    created: bool


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _parse_cached(sha256: str, text: str) -> Policy:
    with _parsed_lock:
        policy = _parsed.get(sha256)
    if policy is None:
        policy = parse_policy_text(text)
        with _parsed_lock:
            if len(_parsed) >= _CACHE_LIMIT:
                _parsed.clear()
            _parsed[sha256] = policy
    return policy


def validate(text: str) -> Policy:
    """The parsed policy, or PolicyInvalid naming each field and reason."""
    from jiefeng.policy.schema import PolicyInvalid

    if len(text) > MAX_POLICY_CHARS:
        raise PolicyInvalid([("(file)", f"longer than {MAX_POLICY_CHARS} characters")])
    return parse_policy_text(text)


def policy_by_version(connection: Any, version: str, sha256: str) -> Policy | None:
    """A stored version's policy, if its text still has the digest the activation named."""
    row = connection.execute(
        select(st.policies.c.sha256, st.policies.c.body)
        .where(st.policies.c.version == version)).first()
    if row is None or row.sha256 != sha256:
        return None
    return _parse_cached(row.sha256, row.body)


def activation_event(store: SqlStore, version: str, actor: str,
                     now: dt.datetime) -> dict[str, Any]:
    """The `policy_activated` event for a stored version (raises PolicyNotFound)."""
    return {"event_id": f"policy-{uuid.uuid4().hex}", "type": "policy_activated",
            "at": now.isoformat(), "actor": actor, "version": version,
            "sha256": get(store, version)["sha256"]}


def upload(store: SqlStore, text: str, actor: str, now: dt.datetime) -> Uploaded:
    policy = validate(text)
    digest = _sha256(text)
    builtin = default_policy()
    if policy.version == builtin.version and policy != builtin:
        raise PolicyConflict("version", f"{policy.version!r} is the built-in policy's version; "
                                        "give changed settings a new version")
    with store.transaction() as connection:
        row = connection.execute(
            select(st.policies).where(st.policies.c.version == policy.version)).first()
        if row is not None:
            if row.sha256 != digest:
                raise PolicyConflict("version", f"version {policy.version!r} already exists "
                                                "with different text; choose a new version")
            return Uploaded(_record(row, _active_seq(connection)), created=False)
        try:
            connection.execute(st.policies.insert().values(
                version=policy.version, body=text, sha256=digest,
                uploaded_at_utc=t.utc_text(now), uploaded_by=actor))
        except IntegrityError:
            raise PolicyConflict("version", f"version {policy.version!r} was uploaded at the "
                                            "same moment; retry") from None
    return Uploaded(get(store, policy.version), created=True)


def activate(store: SqlStore, version: str, actor: str, now: dt.datetime) -> dict[str, Any]:
    with store.transaction() as connection:
        store.lock_portfolio(connection)
        row = connection.execute(
            select(st.policies.c.version).where(st.policies.c.version == version)).first()
        if row is None:
            raise PolicyNotFound(version)
        next_seq = (_active_seq(connection) or 0) + 1
        connection.execute(st.policies.update().where(st.policies.c.version == version).values(
            activation_seq=next_seq, activated_at_utc=t.utc_text(now), activated_by=actor))
    return get(store, version)


def get(store: SqlStore, version: str) -> dict[str, Any]:
    with store.read() as connection:
        row = connection.execute(
            select(st.policies).where(st.policies.c.version == version)).first()
        if row is None:
            raise PolicyNotFound(version)
        return _record(row, _active_seq(connection))


def list_all(store: SqlStore) -> list[dict[str, Any]]:
    with store.read() as connection:
        active = _active_seq(connection)
        rows = connection.execute(select(st.policies).order_by(st.policies.c.uploaded_at_utc,
                                                               st.policies.c.version))
        return [_record(row, active) for row in rows]


def _active_seq(connection: Any) -> int | None:
    return connection.execute(select(func.max(st.policies.c.activation_seq))).scalar()


def _record(row: Any, active_seq: int | None) -> dict[str, Any]:
    return {
        "version": row.version,
        "sha256": row.sha256,
        "uploaded_at": t.parse_utc_text(row.uploaded_at_utc).isoformat(),
        "uploaded_by": row.uploaded_by,
        "active": row.activation_seq is not None and row.activation_seq == active_seq,
        "activated_at": (t.parse_utc_text(row.activated_at_utc).isoformat()
                         if row.activated_at_utc else None),
        "activated_by": row.activated_by,
    }


def stored_policy(store: SqlStore, version: str) -> Policy:
    """A stored version, parsed (it was validated when uploaded)."""
    with store.read() as connection:
        body = connection.execute(
            select(st.policies.c.body).where(st.policies.c.version == version)).scalar()
    if body is None:
        raise PolicyNotFound(version)
    return validate(body)


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, inner in value.items():
            flat.update(_flat(inner, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: value}


def diff(current: Policy, candidate: Policy) -> list[tuple[str, Any, Any]]:
    """(setting, current value, candidate value) of every setting that differs, by name: what
    an operator checks before activating a version."""
    before = _flat(current.model_dump(mode="json"))
    after = _flat(candidate.model_dump(mode="json"))
    return [(key, before.get(key), after.get(key)) for key in sorted(before.keys() | after.keys())
            if before.get(key) != after.get(key)]
