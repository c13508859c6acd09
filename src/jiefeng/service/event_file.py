"""A JSON Lines file of events, ingested a transaction at a time: memory does not grow with
the file's bytes, nor with one object per line.

Reading a whole file, cutting it into a list of lines, ordering that list and keeping a result
per line made a 5,000,000-event file need several gigabytes. Here the file is read twice:

1. `scan` reads it in blocks of SCAN_BLOCK_BYTES and keeps, per line that is not blank, its
   byte offset and time key (`packed_key`: time, then tie rank) as int64, its account's
   group (`jiefeng.service.decision_order`) as an int32, its length as a uint32 (an int64
   for a file with a line of 4 GiB or more), and its line number only once a blank line has
   made numbers differ from positions (24 bytes a line without blank lines, 32 with), plus one
   dict entry per account. Repeats of an event_id travel with their first line: they are
   found by a hash of the id (one more int64 a line, dropped once they are settled) and
   settled by reading again the ids of the lines whose hash repeats, so a hash collision
   changes nothing. A file of one transaction needs none of it (it sorts itself).
2. `batches` puts the lines in decision order (account by account between barriers: a file
   in time order is counted into place, in one int64 a line; another is counted into place
   by account, then each account's lines are sorted),
   cuts them where `transaction_batches` cuts, and reads a batch's lines back by offset only
   when that batch is taken.

The lines are those `jiefeng.service.lines.event_lines` gives for the whole file (a BOM at the
start skipped, cut on `\\n` only, blank lines skipped, bytes not decoded) and the order and
cuts are those of `decision_batches`, so a file gives the same results, stored rows and
effects either way (`tests/test_ingest_streaming.py` compares them).

A stream (stdin) is spooled to a temporary file first: the second read needs offsets.

Why one long module: the index is one layout (arrays a line, their typecodes, when numbers
and hashes exist) that `scan` writes and the ordering and reading back read; each side is
checked against the other. The scan's loop reads the usual line inline (about a third of its
time went to calls), which lengthens it.
"""

from __future__ import annotations

import datetime as dt
import operator
import os
import shutil
import tempfile
from array import array
from collections.abc import Collection, Iterator, Sequence
from itertools import islice
from typing import IO, Any, NamedTuple, Protocol
from zlib import crc32

import orjson

from jiefeng.service import decision_order as ordering
from jiefeng.service.decision_order import (
    BARRIER_TYPES,
    EPOCH,
    MICROSECOND,
    PORTFOLIO,
    TIE_RANKS,
    AppealResolver,
    int64_view,
    line_routing,
    packed_key,
    transaction_batches,
    with_stored_appeals,
)
from jiefeng.service.lines import UTF8_BOM
from jiefeng.service.order_facts import UNREADABLE_KEY, order_facts, order_key, tie_rank

# Read at a time by `scan` (a longer line is carried over). A block is held about four times
# over while it is cut into lines: a few MB at most.
SCAN_BLOCK_BYTES = 1024 * 1024
SPOOL_BLOCK_BYTES = 1024 * 1024
# Lines of one batch at most this far apart are read in one go, up to READ_RUN_BYTES: an ordered
# file's batch is one run of lines; a shuffled file's is scattered, and skipping a few KiB costs
# about what another read does.
READ_GAP_BYTES = 4 * 1024
READ_RUN_BYTES = 8 * 1024 * 1024

# Lines whose id may repeat, grouped in a dict; more go through arrow (bounded memory).
MAX_REPEAT_CANDIDATES = 500_000
# A file at least this large is indexed in two halves at once when another process can take
# one (`scan`): about 0.13 s of 0.27 s for 100,000 lines, while that process is idle anyway.
SPLIT_SCAN_BYTES = 2 * 1024 * 1024
LENGTH_LIMIT = 2**32 - 1  # a line's length as a uint32 of the index


class EventFile:
    """The non-blank lines of a seekable binary file, indexed by `scan`. Close it (or use it
    as a context manager) to close the file."""

    def __init__(self, source: IO[bytes]) -> None:
        self.source = source
        # Line numbers from 1, blank lines counted; None while each is its position plus one
        # (a file without blank lines never needs them).
        self.numbers: array | None = None
        self.offsets = array("q")  # of the line's first byte
        self.lengths = array("I")  # without its "\n"; array("q") once one does not fit
        self.keys = array("q")  # decision key (`packed_key`), a repeat's that of its first line
        # The line's account, as an index into `accounts` (PORTFOLIO for a command or a line
        # whose account is unknown), a repeat's that of its first line; ranks once ordered.
        self.groups = array("i")
        self.accounts: dict[str, int] = {}  # account id -> index, in order of appearance
        self.barrier_keys: list[int] = []  # of the lines that cut the file into segments
        self.submitted: dict[str, int] = {}  # appeal id -> index of the account submitting it
        # (line index, appeal id) of appeal decisions sent without an account_id
        self.unrouted: list[tuple[int, str]] = []
        # Of each line's event_id (Python's hash, fixed within this process): until the
        # repeats are settled (`decision_order`), only files of more than one transaction.
        self.hashes: array | None = array("q")
        self.kept: list[tuple[int, bytes]] = []  # the lines of `scan`'s `keep_types`
        # The decision order once known (`decision_order`); the keys are dropped then.
        self.order: Sequence[int] | None = None
        self.owners: array | None = None  # once ordered: `ordering.line_owners`

    def __len__(self) -> int:
        return len(self.offsets)

    def __enter__(self) -> EventFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.source.close()

    def join(self, part: EventFile, lines_before: int) -> None:
        """Append the index of the lines that follow this one's in the file (`part`, indexed
        apart by `scan_range`); `lines_before`: this range's lines, blank ones counted. The
        result is the index one scan of both ranges gives."""
        base = len(self.offsets)
        if self.numbers is not None or part.numbers is not None or lines_before != base:
            if self.numbers is None:
                self.numbers = array("q", range(1, base + 1))
            theirs = part.numbers if part.numbers is not None else range(1, len(part) + 1)
            self.numbers.extend(lines_before + number for number in theirs)
        self.offsets.extend(part.offsets)
        if part.lengths.typecode != self.lengths.typecode:  # a line of 4 GiB or more
            self.lengths = array("q", self.lengths)
        self.lengths.extend(array(self.lengths.typecode, part.lengths))
        self.keys.extend(part.keys)
        # Their accounts join ours in order of appearance; their groups follow.
        mine = [self.accounts.setdefault(account, len(self.accounts)) for account in part.accounts]
        self.groups.extend(array("i", [group if group == PORTFOLIO else mine[group]
                                       for group in part.groups]))
        self.barrier_keys.extend(part.barrier_keys)
        for appeal_id, group in part.submitted.items():
            self.submitted.setdefault(appeal_id, mine[group])
        self.unrouted.extend((base + index, appeal_id) for index, appeal_id in part.unrouted)
        assert self.hashes is not None and part.hashes is not None
        # An unreadable line's mark is its own index, negated: renumbered to stay unique.
        self.hashes.extend(array("q", [value if value >= 0 else ~(base + ~value)
                                       for value in part.hashes]))
        self.kept.extend((lines_before + number, line) for number, line in part.kept)

    # --- reading back -----------------------------------------------------------------------

    def lines(self, indices: Sequence[int]) -> list[tuple[int, bytes]]:
        """(line number, line) of the lines at these indices, in the order given."""
        wanted = sorted(indices)  # offsets grow with the index: one pass forward
        found: dict[int, bytes] = {}
        offsets, lengths = self.offsets, self.lengths
        position = 0
        while position < len(wanted):
            first = wanted[position]
            start = end = offsets[first]
            run = position
            while run < len(wanted) and offsets[wanted[run]] - end <= READ_GAP_BYTES and (
                    run == position
                    or offsets[wanted[run]] + lengths[wanted[run]] - start <= READ_RUN_BYTES):
                end = offsets[wanted[run]] + lengths[wanted[run]]
                run += 1
            self.source.seek(start)
            data = self.source.read(end - start)
            assert len(data) == end - start, "the file changed while it was ingested"
            for index in wanted[position:run]:
                begin = offsets[index] - start
                found[index] = data[begin : begin + lengths[index]]
            position = run
        numbers = self.numbers
        if numbers is None:
            return [(index + 1, found[index]) for index in indices]
        return [(numbers[index], found[index]) for index in indices]

    def items(self) -> list[tuple[int, bytes]]:
        """Every line, as `event_lines` gives them (for tests and small files)."""
        return self.lines(range(len(self)))

    # --- decision order ---------------------------------------------------------------------

    def decision_order(self, batch_events: int,
                       resolve_appeals: AppealResolver | None = None) -> Sequence[int]:
        """Line indices in the order `decision_batches` takes the lines: in decision order
        (`jiefeng.service.decision_order`) if the file is more than one transaction, else as
        they are. `resolve_appeals` as for `decision_order`."""
        count = len(self)
        if count <= batch_events or count < 2:
            return range(count)  # one transaction sorts itself
        if self.order is not None:
            return self.order
        self._route_appeals(resolve_appeals)
        if self.hashes is not None:
            _settle_repeats(self, self.hashes)
            self.hashes = None
        groups = self.groups
        self.owners = ordering.line_owners(names := list(self.accounts), groups)
        ranks = ordering.account_ranks(names)
        for index, group in enumerate(groups):
            if group != ordering.PORTFOLIO:
                groups[index] = ranks[group]
        keys = self.keys
        # Most files are in time order, at least account by account: counted into place, in
        # one int64 a line; another is counted into place by account, then each account's
        # lines are sorted.
        order: Sequence[int]
        if (all(map(operator.le, keys, islice(keys, 1, None)))
                or ordering.in_time_by_group(keys, groups, len(ranks))):
            order = ordering.account_order_of_timed(keys, groups, self.barrier_keys,
                                                    len(ranks))
        else:
            order = ordering.account_order_of_any(keys, groups, self.barrier_keys, len(ranks))
        # The keys and groups served only to order the lines (60 MB for 5,000,000).
        del keys, groups
        self.keys, self.groups, self.accounts = array("q"), array("i"), {}
        self.order = order
        return order

    def _route_appeals(self, resolve_appeals: AppealResolver | None) -> None:
        """An appeal decision sent without an account_id joins its appeal's account: one
        the file submits, else the store's (`resolve_appeals`); else it stays with the
        portfolio's lines (and is rejected if the appeal is still unknown when it is taken)."""
        if not self.unrouted:
            return
        names = list(self.accounts)
        submitted = {appeal_id: names[index] for appeal_id, index in self.submitted.items()}
        appeals = with_stored_appeals(submitted, (a for _, a in self.unrouted), resolve_appeals)
        for index, appeal_id in self.unrouted:
            account_id = appeals.get(appeal_id)
            if account_id is not None:
                self.groups[index] = self.accounts.setdefault(account_id, len(self.accounts))
        self.unrouted = []

    def batches(self, batch_events: int,
                resolve_appeals: AppealResolver | None = None) -> Batches:
        """The file's transactions, as `decision_batches(self.items(), batch_events,
        resolve_appeals)` cuts them; each is read from the file when taken."""
        return Batches(self, transaction_batches(
            self.decision_order(batch_events, resolve_appeals), batch_events))


class Batches(Sequence[list[tuple[int, bytes]]]):
    """A file's transactions, read lazily: `batches[n]` reads batch n's lines; a slice is the
    batches from there on (the pipeline's fallback redoes the rest)."""

    def __init__(self, file: EventFile, cuts: list[Sequence[int]]) -> None:
        self.file = file
        self.cuts = cuts

    def __len__(self) -> int:
        return len(self.cuts)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return Batches(self.file, self.cuts[index])
        return self.file.lines(self.cuts[index])

    def __iter__(self) -> Iterator[list[tuple[int, bytes]]]:
        for cut in self.cuts:
            yield self.file.lines(cut)

    def owners(self, index: int) -> list[int] | None:
        """Batch `index`'s `line_owners`, in its order; None for one transaction."""
        owners = self.file.owners
        return None if owners is None else [owners[line] for line in self.cuts[index]]


def spooled(stream: IO[bytes]) -> IO[bytes]:
    """A stream copied to an anonymous temporary file (deleted when closed), rewound."""
    spool = tempfile.TemporaryFile()
    try:
        shutil.copyfileobj(stream, spool, SPOOL_BLOCK_BYTES)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool


def _blocks(source: IO[bytes], start: int = 0,
            end: int | None = None) -> Iterator[tuple[int, list[bytes]]]:
    """(offset of the first, lines) per block read: every line the file's bytes cut on
    `\\n` give, the last one included (empty after a final `\\n`), a BOM at the start
    skipped. From byte `start` to byte `end` (after a `\\n`): the lines of that range, no
    empty one after its last."""
    source.seek(start)
    left = -1 if end is None else end - start

    def read() -> bytes:
        nonlocal left
        if left < 0:
            return source.read(SCAN_BLOCK_BYTES)
        block = source.read(min(SCAN_BLOCK_BYTES, left))
        left -= len(block)
        return block

    head = read()
    while 0 < len(head) < len(UTF8_BOM):  # a short read cannot hide a BOM
        more = read()
        if not more:
            break
        head += more
    offset = start
    if start == 0 and head.startswith(UTF8_BOM):
        offset = len(UTF8_BOM)
    pending = head[offset - start:]
    while True:
        block = read()
        if not block:
            if end is None:
                yield offset, pending.split(b"\n")
            elif pending:  # the range's last lines, without the empty piece after its `\n`
                yield offset, (pending[:-1] if pending.endswith(b"\n") else pending).split(b"\n")
            return
        data = pending + block
        last = data.rfind(b"\n")
        if last < 0:
            pending = data  # one line longer than a block: carried over whole
            continue
        yield offset, data[:last].split(b"\n")
        offset += last + 1
        pending = data[last + 1 :]


class ScanElsewhere(Protocol):
    """Another process that can index part of a file while this one indexes the rest (a
    pipelined ingest's second folding process, idle until the first batch)."""

    def start_scan(self, source: IO[bytes], start: int, keep_types: Collection[str]) -> bool:
        """Start indexing `source` from byte `start` (a line's first) to its end; False if it
        cannot (the file has no path it can open)."""

    def collect_scan(self) -> tuple[EventFile, int] | None:
        """That part's index (`scan_range`) and its count of lines; None if it failed."""


class FirstPart(Protocol):
    """The index of a file's first lines, being made by another process since before this one
    called `scan` (`jiefeng ingest`'s early scan: see jiefeng.service.pipeline_processes)."""

    end: int | None  # the byte it stops before (a line's first), None: the end of the file

    def collect(self) -> tuple[EventFile, int] | None:
        """That part's index (`scan_range`) and its count of lines; None if it failed."""


def scan(source: IO[bytes], keep_types: Collection[str] = (),
         elsewhere: ScanElsewhere | None = None, first: FirstPart | None = None) -> EventFile:
    """Index a seekable binary file (see the module's docstring); the lines of these event
    types are kept whole in `EventFile.kept` (the CLI keeps the commands it audits). A line
    whose type cannot be read is not kept: validation rejects it.

    Given `first`, the lines before `first.end` are indexed by another process already, and
    this one starts there. Given `elsewhere`, what is left, if it is SPLIT_SCAN_BYTES or more,
    is indexed in two halves at once, the second there (cut at a line's start). The parts are
    joined into the index one scan gives; a part that fails elsewhere is indexed here."""
    start = 0 if first is None else first.end
    if start is None:  # `first` indexes the whole file
        mine, lines_read = None, 0
        split = None
    else:
        split = _split_point(source, start) if elsewhere is not None else None
        if split is not None and not elsewhere.start_scan(source, split, keep_types):
            split = None
        mine, lines_read = scan_range(source, keep_types, start, split)
    if first is not None:
        collected = first.collect()
        head, head_lines = (collected if collected is not None
                            else scan_range(source, keep_types, 0, first.end))
        head.source = source
        if mine is not None:
            head.join(mine, head_lines)
        file, lines_read = head, head_lines + lines_read
    else:
        assert mine is not None
        file = mine
    if split is not None:
        assert elsewhere is not None
        scanned = elsewhere.collect_scan()
        part, _ = scanned if scanned is not None else scan_range(source, keep_types, split)
        file.join(part, lines_read)
    return file


def line_start_after(source: IO[bytes], position: int) -> int | None:
    """The first byte of the first line that starts after byte `position` of a file, or None
    if the line there runs to its end."""
    size = os.fstat(source.fileno()).st_size
    source.seek(position)
    while block := source.read(SCAN_BLOCK_BYTES):
        found = block.find(b"\n")
        if found >= 0:
            split = position + found + 1
            return split if split < size else None
        position += len(block)
    return None


def _split_point(source: IO[bytes], start: int = 0) -> int | None:
    """Where the second half of the file's lines from byte `start` starts (the first line that
    starts after the middle byte of the rest), or None for a rest too small to split or a line
    that runs to its end."""
    try:
        size = os.fstat(source.fileno()).st_size
    except (OSError, AttributeError, ValueError):  # not a real file (BytesIO)
        return None
    if size - start < SPLIT_SCAN_BYTES:
        return None
    return line_start_after(source, start + (size - start) // 2)


class NamedFile(NamedTuple):
    """A file another process can open by its path and check it is the same file."""

    path: str  # absolute
    identity: tuple[int, int]  # (device, inode)
    size: int


def named_file(source: IO[bytes]) -> NamedFile | None:
    """`source` as a NamedFile, or None for one without a path (stdin, spooled to an unnamed
    file) or that cannot be looked at."""
    path = getattr(source, "name", None)
    if not isinstance(path, str):
        return None
    try:
        stat = os.fstat(source.fileno())
    except OSError:
        return None
    return NamedFile(os.path.abspath(path), (stat.st_dev, stat.st_ino), stat.st_size)


def scan_file_part(path: str, identity: tuple[int, int], start: int, end: int | None,
                   keep_types: Collection[str]) -> tuple[EventFile, int] | str:
    """Index the lines of the file at `path` from byte `start` to byte `end` (None: its end),
    in a process other than the one ingesting it: `scan_range`'s index (without its file) and
    count of lines, or why not (the path no longer names the file `identity` (device, inode)
    gave, or it cannot be read)."""
    try:
        with open(path, "rb") as source:
            stat = os.fstat(source.fileno())
            if (stat.st_dev, stat.st_ino) != identity:
                return f"{path} is no longer the file being ingested"
            part, lines = scan_range(source, keep_types, start, end)
    except OSError as error:
        return f"{path}: {error.strerror}"
    except Exception as error:  # noqa: BLE001 - said; the caller reads that part itself
        return f"{type(error).__name__}: {error}"
    part.source = None  # type: ignore[assignment] - the index travels, not the file
    return part, lines


def scan_range(source: IO[bytes], keep_types: Collection[str] = (), start: int = 0,
               end: int | None = None) -> tuple[EventFile, int]:
    """The index of the lines from byte `start` (0 or a line's first) to byte `end` (after a
    line's `\n`; None: the end of the file), and how many lines (blank ones counted) that
    range holds. Line numbers and the indices in `unrouted` count from the range's start."""
    file = EventFile(source)
    offsets, lengths, keys = file.offsets, file.lengths, file.keys
    groups, accounts = file.groups, file.accounts
    numbers = None
    hashes = file.hashes
    assert hashes is not None
    number = 0
    loads, read_time = orjson.loads, dt.datetime.fromisoformat
    for offset, lines in _blocks(source, start, end):
        for line in lines:
            number += 1
            start = offset
            offset += len(line) + 1
            if not line or line.isspace():
                continue
            # What `order_facts` reads, inline for the usual line (this loop runs once a
            # line, and calls cost); any other line, or one it cannot read, goes to it.
            try:
                fields = loads(line)
                at, event_id, kind = fields["at"], fields["event_id"], fields["type"]
                instant = read_time(at)
                quick = (instant.tzinfo is not None and type(event_id) is str
                         and type(kind) is str and type(fields) is dict)
                if quick:
                    at = instant.astimezone(dt.UTC)
                    account_id, appeal_id = fields.get("account_id"), fields.get("appeal_id")
            except (ValueError, TypeError, KeyError, OverflowError, IndexError):
                quick = False
            if quick:
                # packed_key, inline: microseconds since 1970 times TIE_RANKS, plus the rank
                key = ((at - EPOCH) // MICROSECOND) * TIE_RANKS + tie_rank(kind)
                account_id = account_id if type(account_id) is str else None
                appeal_id = appeal_id if type(appeal_id) is str else None
            else:
                facts = order_facts(line)
                if facts is not None:
                    event_id, kind = facts.event_id, facts.kind
                    key = packed_key(facts.at, facts.rank)
                    account_id, appeal_id = facts.account_id, facts.appeal_id
            if not quick and facts is None:
                keys.append(UNREADABLE_KEY)
                groups.append(PORTFOLIO)
                # Never a repeat: its own value, which a real id's hash may meet (then both
                # are read again and found different).
                hashes.append(~len(hashes))
            else:
                keys.append(key)
                hashes.append(id_hash(event_id))
                if kind in keep_types:
                    file.kept.append((number, line))
                if kind in BARRIER_TYPES:
                    file.barrier_keys.append(key)
                routed_to, unrouted_appeal = line_routing(kind, account_id, appeal_id)
                if routed_to is not None:
                    group = accounts.get(routed_to)
                    if group is None:
                        group = accounts[routed_to] = len(accounts)
                    groups.append(group)
                    if kind == "appeal_submitted" and appeal_id is not None:
                        file.submitted.setdefault(appeal_id, group)
                else:
                    groups.append(PORTFOLIO)
                    if unrouted_appeal is not None:  # joins its appeal's account once known
                        file.unrouted.append((len(groups) - 1, unrouted_appeal))
            if numbers is not None:
                numbers.append(number)
            elif number != len(offsets) + 1:  # a blank line before: numbers are positions no more
                numbers = file.numbers = array("q", range(1, len(offsets) + 1))
                numbers.append(number)
            offsets.append(start)
            if len(line) > LENGTH_LIMIT and lengths.typecode == "I":
                lengths = file.lengths = array("q", lengths)
            lengths.append(len(line))
    return file, number


def id_hash(event_id: str) -> int:
    """An event id's hash, the same in every process (Python's `hash` of a str is salted per
    process, and a file's halves may be indexed in two); never negative, unlike the marks of
    unreadable lines."""
    return crc32(event_id.encode("utf-8", "surrogatepass"))


def _settle_repeats(file: EventFile, hashes: array) -> None:
    """Give every repeat of an event_id the key and group of its first line, as
    `decision_order` does.

    The hashes that may occur more than once are found with a bitmap of two bytes a line (a
    hash whose bit is already set is a candidate: every repeat, and a few percent of the
    rest); a second pass groups the candidates' lines, and a group of more than one line is
    read again (the ids are compared, so a hash collision changes nothing). Most files have
    none. A file with very many candidates (a file sent twice) goes through arrow, whose
    memory is bounded by the largest group."""
    count = len(hashes)
    if count < 2:
        return
    bits = 1 << max(16, (count * 16 - 1).bit_length())  # at least 16 bits a line
    mask = bits - 1
    seen = bytearray(bits >> 3)
    candidates: set[int] = set()
    for value in hashes:
        slot = value & mask
        bit = 1 << (slot & 7)
        if seen[slot >> 3] & bit:
            candidates.add(value)
            if len(candidates) > MAX_REPEAT_CANDIDATES:
                del seen, candidates
                _settle_repeats_by_arrow(file, hashes)
                return
        else:
            seen[slot >> 3] |= bit
    del seen
    if not candidates:
        return
    groups: dict[int, list[int]] = {}
    for index, value in enumerate(hashes):
        if value in candidates:
            groups.setdefault(value, []).append(index)  # in line order
    for indices in groups.values():
        if len(indices) > 1:
            _settle_group(file, indices)


def _settle_repeats_by_arrow(file: EventFile, hashes: array) -> None:
    import pyarrow.compute as pc

    count = len(hashes)
    by_hash = pc.sort_indices(int64_view(hashes))  # stable: a group is in line order
    ordered = pc.take(int64_view(hashes), by_hash)
    same = pc.equal(ordered.slice(0, count - 1), ordered.slice(1))
    starts = pc.indices_nonzero(same).to_pylist()  # ordered[j] == ordered[j + 1]
    del ordered, same
    group: list[int] = []
    for position in starts:
        if group and group[-1] != position:
            _settle_group(file, [by_hash[j].as_py() for j in group])
            group = []
        if not group:
            group.append(position)
        group.append(position + 1)
    if group:
        _settle_group(file, [by_hash[j].as_py() for j in group])


def _settle_group(file: EventFile, indices: list[int]) -> None:
    """Lines of one id hash, in line order: those of one event_id take the first's key and
    group."""
    first: dict[str, int] = {}
    for index, (_, line) in zip(indices, file.lines(indices), strict=True):
        found = order_key(line)
        if found is not None:  # an unreadable line keeps UNREADABLE_KEY
            origin = first.setdefault(found[0], index)
            file.keys[index] = file.keys[origin]
            file.groups[index] = file.groups[origin]
