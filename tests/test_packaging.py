"""What the wheel installs: the app only; the benchmarks stay in the checkout."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_installs_no_top_level_bench_package(tmp_path: Path) -> None:
    builders = pytest.importorskip("hatchling.builders.wheel")
    wheel = Path(next(iter(builders.WheelBuilder(str(ROOT)).build(
        directory=str(tmp_path), versions=["standard"]))))
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(
        ".dist-info")}
    assert top_level == {"invite_desk"}
    assert "invite_desk/resources/icons/compose.svg" in names  # the resources still ship


def test_python_m_bench_still_runs_from_the_checkout() -> None:
    result = subprocess.run([sys.executable, "-m", "bench", "nope"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and "unknown benchmark nope" in result.stderr


def test_the_readme_links_only_files_inside_the_repository() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/architecture.md" in text
    assert "../" not in text
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        if "://" not in target:
            assert (ROOT / target).resolve().is_relative_to(ROOT), target
            assert (ROOT / target).exists(), target
