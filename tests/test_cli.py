"""The command line: help, and bad input answered with a clear message and exit code 2."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from fake_study import make_fake_study

from bench.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in (
        "run",
        "status",
        "data",
        "sensitivity",
        "verify",
        "analyze",
        "figures",
        "report",
    ):
        assert command in out


@pytest.mark.parametrize(
    "data, expected",
    [
        (
            {"study": "s", "trainig": {}},
            "trainig: Extra inputs are not permitted; did you mean 'training'?",
        ),
        (
            {"study": "s", "training": {"epochs": "ten"}},
            "training.epochs: Input should be a valid integer",
        ),
        ({"study": "s", "training": {"batch_sise": 8}}, "did you mean 'batch_size'"),
        (
            {
                "study": "s",
                "variants": [{"name": "l1_unstructured_global", "kwargs": {"sparsity": 1.0}}],
            },
            "sparsity must be a number in [0, 1)",
        ),
        (
            {"study": "s", "variants": [{"name": "magnitude_prune"}]},
            "unknown variant 'magnitude_prune'",
        ),
        (
            {"study": "s", "variants": [{"name": "dynamic_int8", "kwargs": {"bits": 4}}]},
            "has no argument(s) ['bits']",
        ),
    ],
)
def test_config_errors_name_the_key(tmp_path, capsys, data, expected):
    assert main(["run", str(_write(tmp_path, data))]) == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err


def test_missing_config_file(tmp_path, capsys):
    assert main(["run", str(tmp_path / "nope.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err


def test_missing_image_names_the_csv_row(tmp_path, capsys):
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(images / "a.png")
    pd.DataFrame({"path": ["a.png", "b.png"], "Effusion": [1, 0]}).to_csv(
        tmp_path / "labels.csv", index=False
    )
    config = _write(
        tmp_path,
        {
            "study": "s",
            "dataset": {
                "kind": "csv",
                "root": str(images),
                "files": {"labels": str(tmp_path / "labels.csv")},
                "columns": {"label_columns": ["Effusion"]},
            },
        },
    )
    assert main(["data", "describe", str(config)]) == 2
    err = capsys.readouterr().err
    assert "b.png" in err and "row 2" in err


def test_analyze_refuses_nan_and_pickled_predictions(tmp_path, capsys):
    study = make_fake_study(tmp_path, seeds=2)
    victim = next(study.glob("runs/*/predictions.parquet"))
    df = pd.read_parquet(victim)
    df.loc[0, df.columns[df.columns.str.startswith("prob__")][0]] = np.nan
    df.to_parquet(victim)
    assert main(["analyze", str(study)]) == 2
    assert "NaN probabilities" in capsys.readouterr().err
    victim.write_bytes(pickle.dumps(df))  # a pickle offered as predictions: never unpickled
    assert main(["analyze", str(study)]) == 2
    err = capsys.readouterr().err
    assert "not a readable Parquet" in err and str(victim) in err


def test_status_and_verify_need_a_study_folder(tmp_path, capsys):
    assert main(["status", str(tmp_path)]) == 2
    assert "study.json" in capsys.readouterr().err
    assert main(["verify", str(tmp_path)]) == 2


def test_python_dash_m_entry_points():
    import subprocess

    for module in ("bench", "analysis"):
        out = subprocess.run(
            [sys.executable, "-m", module, "--help"], capture_output=True, text=True, cwd=ROOT
        )
        assert out.returncode == 0 and "analyze" in out.stdout


def test_data_describe_prints_counts_and_writes_the_figure(tmp_path, capsys):
    from tiny import tiny_config

    cfg = tiny_config(tmp_path)
    config = _write(tmp_path, cfg.model_dump(mode="json"))
    figure = tmp_path / "dist.png"
    assert main(["data", "describe", str(config), "--figure", str(figure)]) == 0
    out = capsys.readouterr().out
    assert "SYNTHETIC" in out and "160 images" in out and "Effusion" in out
    assert figure.stat().st_size > 1000
