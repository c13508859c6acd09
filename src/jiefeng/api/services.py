"""What every request needs, built once per app: the store, the clock, credentials, the audit
log, metrics. An Engine is made per request so it reads the active policy version."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request

from jiefeng.api.metrics import Metrics
from jiefeng.service.audit import AuditLog
from jiefeng.service.credential_limits import FailureLimiter
from jiefeng.service.engine import Engine, EngineCaches, utc_now
from jiefeng.service.security import (
    ApiKeys,
    Authenticator,
    CustomerTokens,
    Revocations,
    derive_key,
    signing_secret,
)
from jiefeng.store.sql import SqlStore


@dataclass
class Services:
    store: SqlStore
    now: Callable[[], dt.datetime]
    keys: ApiKeys
    authenticator: Authenticator
    tokens: CustomerTokens
    audit: AuditLog
    metrics: Metrics
    sweep_key: bytes
    caches: EngineCaches
    revocations: Revocations
    limiter: FailureLimiter

    @classmethod
    def build(cls, db: str, now: Callable[[], dt.datetime] | None = None) -> Services:
        clock = now or utc_now
        store = SqlStore(db)
        secret = signing_secret(store, clock())
        keys = ApiKeys(store)
        revocations = Revocations(store)
        tokens = CustomerTokens(secret, revocations)
        return cls(store, clock, keys, Authenticator(keys, tokens), tokens, AuditLog(store),
                   Metrics(store), derive_key(secret, "sweep-dry-run"), EngineCaches(),
                   revocations, FailureLimiter.from_env())

    def engine(self) -> Engine:
        # A fresh Engine reads the active policy; the caches are the process's, shared.
        return Engine(self.store, None, self.now, self.caches)


async def services(request: Request) -> Services:
    # async: a plain attribute read; a sync dependency would cost a thread-pool hop.
    return request.app.state.services
