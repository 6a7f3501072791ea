"""scripts/findings.py: each unit's recovery wall time is read from its run folder and summarised per setting."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from pait.cache import to_jsonable
from pait.config import config_from_dict
from pait.report.document import Table, to_markdown

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "findings.py"


@pytest.fixture(scope="module")
def findings():
    spec = importlib.util.spec_from_file_location("findings", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_folder(root: Path, seconds: list[float | None]) -> Path:
    """A run folder whose units.json lists one sequential unit per entry of ``seconds`` (None: not recorded)."""
    run = root / "study-x"
    units = []
    for i, s in enumerate(seconds):
        unit_dir = root / "stages" / "unit" / f"u{i}"
        unit_dir.mkdir(parents=True)
        metrics = {"pruned": {}, "recovered": {}, "train_loss": []} | ({} if s is None else {"recovery_seconds": s})
        (unit_dir / "metrics.json").write_text(json.dumps(metrics))
        units.append({"unit": f"u{i}", "encoder": "enc", "score": "kfac", "sparsity": 0.4, "source": f"s{i}",
                      "seed": 0, "recovery": "sequential", "unit_dir": f"../stages/unit/u{i}"})
    run.mkdir()
    (run / "units.json").write_text(json.dumps(units))
    return run


def test_recovery_seconds_reads_every_unit_and_marks_missing_times(findings, tmp_path):
    table = findings.recovery_seconds(_run_folder(tmp_path, [3.0, None, 5.0]))
    assert list(table.source) == ["s0", "s1", "s2"]
    assert table.seconds.tolist()[::2] == [3.0, 5.0] and table.seconds.isna().tolist() == [False, True, False]


def test_seconds_table_shows_the_median_and_range_of_recorded_times(findings, tmp_path):
    findings.recovery_seconds(_run_folder(tmp_path, [3.0, None, 5.0, 10.0])).to_csv(tmp_path / findings.SECONDS_FILE, index=False)
    (row,) = next(b for b in findings.seconds_blocks(tmp_path) if isinstance(b, Table)).rows
    assert row == ["enc", "kfac", "40.00%", "sequential", "5.0", "3.0 to 10.0", "3"]
    assert findings.seconds_blocks(tmp_path / "absent") == []


def test_a_run_folder_without_an_index_or_with_lost_units_gives_missing_times(findings, tmp_path):
    assert findings.recovery_seconds(tmp_path).empty
    run = _run_folder(tmp_path, [3.0, 4.0])
    (tmp_path / "stages" / "unit" / "u1" / "metrics.json").unlink()
    assert findings.recovery_seconds(run).seconds.isna().tolist() == [False, True]


def test_a_study_gets_the_p1_own_vs_other_section_and_figure(findings, tmp_path):
    import pandas as pd

    rows = []
    for seed in (0, 1):
        for source in ("digits-0-4", "clothing-a"):
            for target in ("digits-0-4", "clothing-a"):
                own = source == target
                for stage, acc in (("unpruned", 0.9), ("pruned", 0.8 + 0.05 * own + 0.01 * seed), ("recovered", 0.85)):
                    rows.append({"encoder": "enc", "score": "kfac", "sparsity": 0.4, "source": source,
                                 "recovery": "sgd", "structure": "weights", "seed": seed, "target": target, "is_source": own,
                                 "stage": stage, "accuracy": acc, "loss": 1 - acc, "protocol": "heldout",
                                 "suite": "embedded", "unit": f"{source}-{seed}"})
    folder = tmp_path / "study-x"
    folder.mkdir()
    pd.DataFrame(rows).to_parquet(folder / "results.parquet")
    config = config_from_dict({"name": "study-x", "encoders": ["tiny-test-cnn"], "scores": ["kfac"],
                               "sparsities": [0.4]})
    (folder / "config.json").write_text(json.dumps(to_jsonable(config)))
    md = to_markdown(findings.study_blocks(folder))
    assert "### P1: is pruning with the source alone approximately optimal?" in md
    assert "| enc | kfac | 40.00% | zero-shot | 4 | 0.855 | 0.805 | +0.050 [+0.050, +0.050] |" in md
    assert "(study-x/p1_own_vs_other.png)" in md and (folder / "p1_own_vs_other.png").is_file()
    assert "nan" not in md.lower()


def _study(folder: Path, seed: int, accuracy: float, **config) -> Path:
    """A run folder of one unit per source at ``seed``, every accuracy ``accuracy``, a config with ``config``."""
    import pandas as pd

    rows = [{"encoder": "enc", "score": "kfac", "mask": "", "sparsity": 0.4, "source": s, "seed": seed, "target": t,
             "is_source": s == t, "stage": "pruned", "accuracy": accuracy, "unit": f"u{s}{seed}"}
            for s in ("a", "b") for t in ("a", "b")]
    folder.mkdir(parents=True)
    pd.DataFrame(rows).to_parquet(folder / "results.parquet", index=False)
    (folder / "config.json").write_text(json.dumps({"name": "study-x", "seeds": [seed], **config}))
    (folder / "failures.json").write_text(json.dumps([{"unit": f"f{seed}"}]))
    (folder / "agreement.csv").write_text(f"score,seed_a,seed_b,iou\nkfac,{seed},{seed},0.{seed + 1}\n")
    return folder


def test_adding_a_run_s_seeds_keeps_the_committed_ones_and_replaces_its_own(findings, tmp_path):
    import pandas as pd

    committed = _study(tmp_path / "committed", 1, 0.5)
    run = _study(tmp_path / "run", 0, 0.9)
    tables = {"agreement.csv": pd.read_csv(run / "agreement.csv")}
    merged = findings.add_seeds(run, committed, tables)
    results = pd.read_parquet(committed / "results.parquet")
    assert sorted(results.groupby("seed").accuracy.unique().map(tuple).items()) == [(0, (0.9,)), (1, (0.5,))]
    assert json.loads((committed / "config.json").read_text())["seeds"] == [0, 1]
    assert [f["unit"] for f in json.loads((committed / "failures.json").read_text())] == ["f1", "f0"]
    assert sorted(merged["agreement.csv"].seed_a) == [0, 1]
    again = findings.add_seeds(run, committed, tables)  # the same seed added twice replaces, never doubles
    assert len(pd.read_parquet(committed / "results.parquet")) == len(results) and len(again["agreement.csv"]) == 2


def test_a_run_of_another_config_is_not_added(findings, tmp_path):
    committed = _study(tmp_path / "committed", 1, 0.5, finetune={"lr": 0.003})
    run = _study(tmp_path / "run", 0, 0.9, finetune={"lr": 0.03})
    before = (committed / "results.parquet").read_bytes()
    with pytest.raises(findings.ConfigError, match=r"run/config.json: finetune differ"):
        findings.add_seeds(run, committed, {})
    assert (committed / "results.parquet").read_bytes() == before
