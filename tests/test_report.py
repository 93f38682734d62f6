"""analysis.report: one self-contained HTML file that renders in headless Chromium."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from fake_study import make_fake_study
from test_figures import write_tables

from analysis.io import done_runs
from analysis.report import render_table, write_report
from paper_figures import make_all
from paper_figures.catalog import SYNTHETIC_NOTE

FIGS = ["frequency_vs_forgetting", "tradeoff"]  # a few figures keep the test fast


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    study = make_fake_study(tmp_path_factory.mktemp("report"), n_images=40, seeds=2)
    write_tables(study)
    first = done_runs(study)["run_id"][0]
    meta = {
        "git_commit": "0123abc",
        "versions": {"torch": "2.x"},
        "python": "3.11",
        "hardware": {"machine": "x86_64", "cpu_count": 2},
        "host": "<host&>",
    }
    (study / "runs" / first / "meta.json").write_text(json.dumps(meta))
    make_all(study, only=FIGS)
    return write_report(study)


def test_one_self_contained_file(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    assert report.name == "report.html" and report.parent.joinpath("report.html").is_file()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text, re.I)
    assert "<link" not in text.lower() and "<script" not in text.lower()
    assert "@import" not in text and "url(" not in text


def test_synthetic_banner_and_sections(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    assert SYNTHETIC_NOTE in text
    for section in (
        "Summary",
        "Per-class",
        "Size &amp; latency",
        "Forgettability",
        "PIEs",
        "Figures",
        "Run metadata",
    ):
        assert f">{section}</h2>" in text
    assert "paired t over seeds" in text  # the test named in summary.csv reaches the caption
    assert "0123abc" in text and "&lt;host&amp;&gt;" in text  # meta.json, escaped


def test_every_figure_embedded(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    pngs = sorted((report.parent / "figures").glob("*.png"))
    assert len(pngs) == len(FIGS) == len(embedded)
    assert {base64.b64decode(e) for e in embedded} == {p.read_bytes() for p in pngs}


def test_no_banner_for_real_data(tmp_path: Path) -> None:
    study = make_fake_study(tmp_path, n_images=20, seeds=1, sparsities=(0.5,))
    info = json.loads((study / "study.json").read_text())
    info["dataset"]["synthetic"] = False
    (study / "study.json").write_text(json.dumps(info))
    text = write_report(study).read_text(encoding="utf-8")
    assert SYNTHETIC_NOTE not in text
    assert "not available" in text and "No figures yet" in text


def test_cells_are_escaped() -> None:
    df = pd.DataFrame({"class": ["<script>alert(1)</script>"], "pvalue": [1e-5], "n": [12345]})
    out = render_table(df, 'caption "quoted" & <b>')
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert "1.00e-05" in out and "12,345" in out and "&lt;b&gt;" in out


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--enable-logging=stderr",
    "--v=0",
    "--window-size=1280,2000",
]


def _render(page: Path, out: Path) -> tuple[Path, list[str]]:
    """Screenshot a page in headless Chromium; return the PNG and the page's console lines."""
    shot = out / "shot.png"
    proc = subprocess.run(
        [
            "chromium",
            *CHROMIUM_FLAGS,
            f"--user-data-dir={out / 'profile'}",
            f"--screenshot={shot}",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    problems = [
        line
        for line in proc.stderr.splitlines()
        if "Uncaught" in line or ("CONSOLE" in line and page.name in line)
    ]
    return shot, problems


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_renders_in_chromium_without_console_errors(report: Path, tmp_path: Path) -> None:
    # control: the detector sees a page that logs an error and throws
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>console.error('x'); nope();</script></body></html>")
    _, problems = _render(bad, tmp_path / "control")
    assert any("Uncaught" in p for p in problems) and len(problems) >= 2
    shot, problems = _render(report, tmp_path / "report")
    assert problems == []
    assert shot.is_file() and shot.stat().st_size > 20_000  # a blank 1280x2000 page is ~10 kB
