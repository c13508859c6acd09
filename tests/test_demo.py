"""`jiefeng demo` end to end on a small portfolio: every cause is placed and lifted, the table,
the explanations and the report are produced, and a second run is idempotent."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from jiefeng.cli import app
from jiefeng.domain.holds import HOLD_CODES, MANUAL_REVIEW

CAUSES = [code for code in HOLD_CODES if code != MANUAL_REVIEW]


def test_demo_places_and_lifts_every_cause(tmp_path: Path) -> None:
    db, out = str(tmp_path / "demo.db"), tmp_path / "out"
    runner = CliRunner()
    result = runner.invoke(app, ["demo", "--accounts", "120", "--months", "17", "--db", db,
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "rejected 0" in result.output
    assert "causes not both placed and lifted" not in result.output
    for code in CAUSES:
        row = next(line for line in result.output.splitlines() if f" {code} " in line)
        placed, released = [int(cell) for cell in row.replace("│", " ").split()[1:3]]
        assert placed > 0 and released == placed, row
        assert f"{code}: account" in result.output  # one explanation per cause
    html = (out / "demo-report.html").read_text(encoding="utf-8")
    assert "data:image/png;base64," in html
    assert (out / "demo-report-holds.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    again = runner.invoke(app, ["demo", "--accounts", "120", "--months", "17", "--db", db,
                                "--out", str(out)])
    assert again.exit_code == 0
    assert "accepted 0" in again.output and "rejected 0" in again.output
