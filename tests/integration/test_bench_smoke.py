"""The benchmarks run and print what DESIGN.md promises (timings are not asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.__main__ import main


def test_unknown_names_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["nope"])
    assert "unknown benchmark nope" in capsys.readouterr().err


def test_quick_sending_bench_prints_value_baseline_and_ratio(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["sending", "--quick"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["name"] == "sending" and line["unit"] == "messages/s"
    assert line["value"] > 0 and line["baseline"] > 0
    assert line["ratio"] == pytest.approx(line["value"] / line["baseline"], rel=0.01)
    assert line["sent_in_database"] == line["messages"] == 1000


@pytest.mark.slow
def test_quick_referrals_bench_prints_the_three_views_beside_a_baseline(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INVITE_DESK_BENCH_CACHE", str(tmp_path))
    assert main(["referrals", "--quick"]) == 0
    lines = {row["name"]: row for row in map(json.loads, capsys.readouterr().out.splitlines())}
    for name in ("leaderboard", "trend", "conversion"):
        assert lines[name]["unit"] == "ms" and lines[name]["value"] > 0
        assert lines[name]["baseline"] > 0 and lines[name]["referrals"] == 20_000
    assert (tmp_path / "referrals-20000.sqlite3").exists()  # cached for the next run
