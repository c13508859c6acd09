"""`python -m jiefeng.build_native [build|status|clean]`: the compiled hot modules (see
jiefeng.native, which the package imports first, so it cannot be run with -m itself)."""

from __future__ import annotations

import sys

from jiefeng import native


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    command = args[0] if args else "status"
    if command == "build":
        try:
            native.build()
        except native.BuildFailed as failure:
            print(f"build failed; the Python sources run:\n{failure}", file=sys.stderr)
            return 1
        command = "status"
    elif command == "clean":
        removed = native.clean()
        print(f"removed {len(removed)} compiled files")
        return 0
    if command != "status":
        print("usage: python -m jiefeng.build_native [build|status|clean]", file=sys.stderr)
        return 2
    compiled = native.compiled_modules()
    print(f"compiled: {len(compiled)} of {len(native.NATIVE_MODULES)} modules"
          + (f" ({', '.join(m.rsplit('.', 1)[1] for m in compiled)})" if compiled else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
