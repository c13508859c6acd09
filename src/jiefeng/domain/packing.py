"""Values packed into bytes inside a state (settled statements, remembered purchases).

`marshal` from version 3 on flags every object referenced more than once, so the bytes of one
tuple depend on reference counts: on which other objects happen to share an int or a string,
and on whether the code runs as Python or compiled (`make native`). Packed bytes are compared
(state equality, the refold check) and pickled into snapshots, so they must depend on the
values alone: version 2 has no such flags.
"""

from __future__ import annotations

import marshal
from typing import Any

MARSHAL_VERSION = 2


def pack(value: Any) -> bytes:
    return marshal.dumps(value, MARSHAL_VERSION)


unpack = marshal.loads
