"""The fold's hot modules compiled to C with mypyc (`make native`), and the way back to Python.

The pure fold runs every event through a few modules: the core's dispatch, the rules, the
account's bookkeeping, the ledger and billing arithmetic, the hold book, the remembered
purchases, the causes' handlers. Compiled by mypyc (part of mypy: it compiles type-annotated
Python to a C extension per module, same semantics) the fold runs about 1.3-1.4 times as
fast; the Python sources stay the reference, and every test runs on them.

    python -m jiefeng.build_native build    # compile NATIVE_MODULES in place (needs the
                                            # [native] extra and a C compiler); `make native`
    python -m jiefeng.build_native status   # which modules run compiled
    python -m jiefeng.build_native clean    # remove the compiled modules

A compiled module sits next to its source (`ledger.cpython-311-x86_64-linux-gnu.so` beside
`ledger.py`) and Python imports it first. Two guards keep that from surprising anyone:

- `JIEFENG_NATIVE=0` in the environment runs the sources even where compiled modules exist.
- A compiled module older than its source (the source was edited or checked out after the
  build) is never used: the package warns once on stderr and runs the sources instead, so a
  forgotten rebuild costs speed, never correctness.

What compiled and Python processes write is the same: states pack and pickle the same bytes
(`jiefeng.domain.packing`, `jiefeng.domain.pickled`), so one store can be served by both.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

# The modules every event goes through (measured with a profile of the fold); the causes'
# declarations, holds, events and scopes stay Python (see docs/architecture.md). The state and
# the effects are compiled for their classes: every compiled module reads and writes an
# account's state, and compiled code reads a native class's attributes directly, not
# through a descriptor looked up on the type.
NATIVE_MODULES = (
    "jiefeng.domain.clock",
    "jiefeng.domain.ledger",
    "jiefeng.domain.billing",
    "jiefeng.domain.holdbook",
    "jiefeng.domain.rules",
    "jiefeng.domain.account",
    "jiefeng.domain.core",
    "jiefeng.domain.remembered",
    "jiefeng.domain.features",
    "jiefeng.domain.state",
    "jiefeng.domain.effects",
    # The causes' handlers, deadlines and checks (plain functions; their declarations and
    # tables, `causes/base.py` and `causes/__init__.py`, stay Python).
    "jiefeng.domain.causes.account_security",
    "jiefeng.domain.causes.cash_out",
    "jiefeng.domain.causes.dormancy",
    "jiefeng.domain.causes.external_overdue",
    "jiefeng.domain.causes.id_expiry",
    "jiefeng.domain.causes.maintenance",
    "jiefeng.domain.causes.manual_review",
    "jiefeng.domain.causes.migration",
    "jiefeng.domain.causes.overdue",
    "jiefeng.domain.causes.password",
    "jiefeng.domain.causes.policy_tightening",
    "jiefeng.domain.causes.score",
)
NATIVE_ENV = "JIEFENG_NATIVE"
SRC_DIR = Path(__file__).resolve().parent.parent  # the directory that holds `jiefeng/`
_EXTENSION_SUFFIXES = tuple(importlib.machinery.EXTENSION_SUFFIXES)


def source_path(module: str) -> Path:
    """The `.py` of a jiefeng module, compiled or not (`__file__` of a compiled one names its
    extension; tools that read the source, such as tests parsing a cause, read this)."""
    return SRC_DIR.joinpath(*module.split(".")).with_suffix(".py")


def _extensions(module: str) -> list[Path]:
    source = source_path(module)
    stem = source.with_suffix("")
    return [Path(f"{stem}{suffix}") for suffix in _EXTENSION_SUFFIXES
            if Path(f"{stem}{suffix}").is_file()]


def _group_libraries() -> list[Path]:
    """mypyc's shared runtime for a group of modules, named `<hash>__mypyc...`, at the top."""
    return sorted(SRC_DIR.glob("*__mypyc*"))


def stale_modules() -> list[str]:
    """Modules whose compiled extension is older than their source."""
    stale = []
    for module in NATIVE_MODULES:
        extensions = _extensions(module)
        if extensions and any(ext.stat().st_mtime < source_path(module).stat().st_mtime
                              for ext in extensions):
            stale.append(module)
    return stale


class _SourcesOnly:
    """A meta path finder that loads NATIVE_MODULES from their `.py`, never the extension."""

    @staticmethod
    def find_spec(fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in NATIVE_MODULES:
            return None
        return importlib.util.spec_from_file_location(fullname, source_path(fullname))


def use_sources() -> None:
    """Run the Python sources of NATIVE_MODULES from now on (before they are imported)."""
    if not any(isinstance(finder, _SourcesOnly) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SourcesOnly())


def guard() -> None:
    """Called when the package is imported: the sources when asked for or when a compiled
    module is stale. Costs a directory listing when nothing was compiled."""
    if os.environ.get(NATIVE_ENV) == "0":
        use_sources()
        return
    domain = SRC_DIR / "jiefeng" / "domain"
    try:
        if not any(name.endswith(_EXTENSION_SUFFIXES) for name in os.listdir(domain)):
            return  # nothing compiled: the usual case
    except OSError:
        return
    stale = stale_modules()
    if stale:
        print(f"jiefeng: compiled modules older than their sources ({', '.join(stale)}): "
              "running the Python sources; run `make native` again", file=sys.stderr)
        use_sources()


def compiled_modules() -> list[str]:
    """Which of NATIVE_MODULES this process runs compiled (imports them)."""
    compiled = []
    for module in NATIVE_MODULES:
        loaded = importlib.import_module(module)
        if str(getattr(loaded, "__file__", "")).endswith(_EXTENSION_SUFFIXES):
            compiled.append(module)
    return compiled


class BuildFailed(RuntimeError):
    """mypyc refused a module (a type error) or the C compiler failed; nothing was kept."""


def clean() -> list[Path]:
    removed = [ext for module in NATIVE_MODULES for ext in _extensions(module)]
    removed += _group_libraries()
    for path in removed:
        path.unlink()
    return removed


def build() -> None:
    """Compile NATIVE_MODULES in place with mypyc; its scratch files go to a directory that is
    removed afterwards."""
    import shutil  # here, not at the top: every process imports this module, few build
    import subprocess

    clean()
    sources = [str(source_path(module).relative_to(SRC_DIR)) for module in NATIVE_MODULES]
    scratch = SRC_DIR / "build"
    try:
        # mypyc type-checks the modules (a type error stops the build: compiled code relies
        # on the annotations), writes C and its build files under the working directory and
        # copies each extension next to its source.
        result = subprocess.run([sys.executable, "-m", "mypyc", "--ignore-missing-imports",
                                 "--cache-dir", str(scratch / "mypy-cache"), *sources],
                                cwd=SRC_DIR, capture_output=True, text=True)
        if result.returncode != 0:
            # mypy's type errors come on stdout, the compiler's on stderr; the build's log is
            # long, so only the lines that say what failed.
            errors = [line for line in (result.stdout + result.stderr).splitlines()
                      if "error" in line.lower()] or result.stderr.splitlines()[-20:]
            clean()  # a partial build never stays
            raise BuildFailed("\n".join(errors))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    if os.environ.get(NATIVE_ENV) != "0":  # current now: what was stale at import is not
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _SourcesOnly)]
