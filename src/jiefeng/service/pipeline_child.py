"""Entry point of a pipelined file ingest's writer or second folding process (see
jiefeng.service.pipeline_processes): `python -m jiefeng.service.pipeline_child ROLE FD`."""

from __future__ import annotations

import sys
from multiprocessing.connection import Connection


def main(argv: list[str]) -> None:
    role, descriptor = argv
    connection = Connection(int(descriptor))
    # The import this process was started early for: it runs while the parent starts too.
    from jiefeng.service import pipeline

    pipeline.serve(role, connection)


if __name__ == "__main__":
    main(sys.argv[1:])
