"""The compiled hot modules (`make native`, jiefeng.native): the same decisions and the same
bytes as the Python sources, and the guards that keep a stale or unwanted build out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jiefeng import native

# Folds a synthetic portfolio and prints digests of everything the fold produces: the pickled
# states (what snapshots and the pipeline's processes exchange), the effects, and which
# modules ran compiled.
FOLD_DIGESTS = """
import hashlib, json, pickle
from collections import defaultdict
from jiefeng import native
from jiefeng.batch.limits import MIN_ACCOUNTS
from jiefeng.batch.synthetic import MIN_MONTHS, PortfolioSpec, generate_portfolio
from jiefeng.domain import core
from jiefeng.domain.events import parse_event
from jiefeng.domain.scopes import SCOPE_TYPES, Scopes, apply_scope_command
from jiefeng.policy.schema import default_policy

policy, scopes, by_account = default_policy(), Scopes(), defaultdict(list)
for raw in generate_portfolio(PortfolioSpec(accounts=MIN_ACCOUNTS, months=MIN_MONTHS, seed=3)):
    event = parse_event(raw)
    if event.type in SCOPE_TYPES:
        scopes = apply_scope_command(scopes, event)
    elif getattr(event, "account_id", None):
        by_account[event.account_id].append(event)
states, effects = hashlib.sha256(), hashlib.sha256()
for account_id in sorted(by_account):
    state, made = core.fold(account_id, by_account[account_id], policy, scopes)
    states.update(pickle.dumps(state, protocol=5))
    for e in made:
        effects.update(repr((e.kind, e.at, e.account_id, e.code, e.cause,
                             json.dumps(e.data, sort_keys=True, default=str))).encode())
        effects.update(pickle.dumps(e, protocol=5))  # what the pipeline's processes exchange
print(json.dumps({"compiled": native.compiled_modules(), "states": states.hexdigest(),
                  "effects": effects.hexdigest(), "accounts": len(by_account)}))
"""


def _fold_digests(**env: str) -> dict:
    import json

    inherited = {k: v for k, v in os.environ.items() if k != native.NATIVE_ENV}
    result = subprocess.run([sys.executable, "-c", FOLD_DIGESTS], capture_output=True,
                            text=True, env={**inherited, **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _built() -> bool:
    return any(native._extensions(module) for module in native.NATIVE_MODULES)


needs_build = pytest.mark.skipif(
    not _built() and os.environ.get("JIEFENG_EXPECT_NATIVE") != "1",
    reason="no compiled modules: run `make native` (CI builds them and sets "
           "JIEFENG_EXPECT_NATIVE=1, so there this test runs)")


@needs_build
def test_compiled_and_python_fold_to_the_same_bytes() -> None:
    compiled = _fold_digests()
    python = _fold_digests(**{native.NATIVE_ENV: "0"})
    assert compiled["compiled"] == list(native.NATIVE_MODULES)  # built, current, in use
    assert python["compiled"] == []
    assert compiled["accounts"] == python["accounts"] >= 50
    assert compiled["effects"] == python["effects"]
    assert compiled["states"] == python["states"]


def _fake_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, so_age_s: float) -> Path:
    """A source tree with one native module and an extension `so_age_s` older than it."""
    monkeypatch.setattr(native, "SRC_DIR", tmp_path)
    module = native.NATIVE_MODULES[0]
    source = tmp_path.joinpath(*module.split(".")).with_suffix(".py")
    source.parent.mkdir(parents=True)
    source.write_text("VALUE = 'source'\n")
    extension = Path(f"{source.with_suffix('')}{native._EXTENSION_SUFFIXES[0]}")
    extension.write_bytes(b"not really compiled")
    mtime = source.stat().st_mtime
    os.utime(extension, (mtime - so_age_s, mtime - so_age_s))
    return extension


def test_an_extension_older_than_its_source_is_stale(tmp_path, monkeypatch) -> None:
    _fake_tree(tmp_path, monkeypatch, so_age_s=60)
    assert native.stale_modules() == [native.NATIVE_MODULES[0]]


def test_an_extension_built_after_its_source_is_current(tmp_path, monkeypatch) -> None:
    _fake_tree(tmp_path, monkeypatch, so_age_s=-60)
    assert native.stale_modules() == []


def test_a_stale_build_runs_the_sources_and_says_so(tmp_path, monkeypatch, capsys) -> None:
    _fake_tree(tmp_path, monkeypatch, so_age_s=60)
    monkeypatch.delenv(native.NATIVE_ENV, raising=False)
    monkeypatch.setattr(sys, "meta_path", list(sys.meta_path))
    native.guard()
    assert isinstance(sys.meta_path[0], native._SourcesOnly)
    assert "make native" in capsys.readouterr().err
    spec = sys.meta_path[0].find_spec(native.NATIVE_MODULES[0])
    assert spec.origin.endswith(".py")
    assert sys.meta_path[0].find_spec("jiefeng.domain.events") is None  # others: as usual


def test_jiefeng_native_0_runs_the_sources_of_every_native_module() -> None:
    result = subprocess.run([sys.executable, "-m", "jiefeng.build_native", "status"],
                            capture_output=True, text=True, check=True,
                            env={**os.environ, native.NATIVE_ENV: "0"})
    assert result.stdout.startswith(f"compiled: 0 of {len(native.NATIVE_MODULES)} modules")


def test_clean_removes_the_extensions_and_the_group_library(tmp_path, monkeypatch) -> None:
    extension = _fake_tree(tmp_path, monkeypatch, so_age_s=0)
    group = tmp_path / f"abc123__mypyc{native._EXTENSION_SUFFIXES[0]}"
    group.write_bytes(b"")
    assert set(native.clean()) == {extension, group}
    assert not extension.exists() and not group.exists()
    assert tmp_path.joinpath(*native.NATIVE_MODULES[0].split(".")).with_suffix(".py").exists()


def test_a_failed_build_keeps_nothing_and_says_what_failed(tmp_path, monkeypatch) -> None:
    extension = _fake_tree(tmp_path, monkeypatch, so_age_s=0)

    def refused(*args, **kwargs):
        extension.write_bytes(b"half built")  # what a failing build may leave behind
        return subprocess.CompletedProcess(
            args, 1, stdout="jiefeng/domain/ledger.py:9: error: Incompatible types\n"
                            "Found 1 error in 1 file\n", stderr="")

    monkeypatch.setattr(subprocess, "run", refused)
    with pytest.raises(native.BuildFailed, match="ledger.py:9: error: Incompatible types"):
        native.build()
    assert not extension.exists()
    assert not (tmp_path / "build").exists()
