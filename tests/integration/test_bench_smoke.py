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
    for view in ("leaderboard", "conversion", "trend"):  # rolling and custom, beside the raw
        for period in ("rolling_year", "custom_range"):
            assert lines[f"{view}_{period}"]["value"] > 0
            assert lines[f"{view}_{period}"]["baseline"] > 0
    assert (tmp_path / "referrals-20000.sqlite3").exists()  # cached for the next run


@pytest.mark.slow
def test_quick_relay_bench_prints_value_baseline_sequential_and_speedup(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Issue 13: K lanes through a sink whose every reply waits 25 ms, against bare smtplib
    over the same K connections and over one."""
    assert main(["relay", "--quick"]) == 0
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["name"] == "relay" and line["unit"] == "messages/s"
    assert line["connections"] == 8 and line["reply_delay_ms"] == 25.0
    assert line["value"] > 0 and line["baseline"] > 0 and line["sequential"] > 0
    assert line["ratio"] == pytest.approx(line["value"] / line["baseline"], rel=0.01)
    assert line["speedup"] == pytest.approx(line["value"] / line["sequential"], rel=0.01)
    assert line["speedup"] > 2  # eight connections really run side by side


@pytest.mark.slow
def test_quick_audit_bench_times_each_step_against_a_baseline(
    capsys: pytest.CaptureFixture[str], tmp_path: object, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("INVITE_DESK_BENCH_CACHE", str(tmp_path))
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert main(["audit", "--quick"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    by_name = {line["name"]: line for line in lines}
    for step in ("open", "filter_action", "filter_person", "filter_object",
                 "scroll_next_page", "go_to_middle", "go_to_end", "search_text"):
        line = by_name[f"audit_{step}"]
        assert line["unit"] == "ms" and line["value"] > 0 and line["baseline"] > 0
        assert line["rows"] == 20_000 and line["target_ms"] == 200.0
    assert by_name["audit_go_to_end"]["oldest_day_rows"] > 0
