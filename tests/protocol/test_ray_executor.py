"""The Ray executor: same table as the local one, and a one-time failure retried (local Ray, 2 CPUs)."""

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from gridutil import snapshot
from test_random_weights import assert_sparsity_zero_is_unpruned, random_grid

from pait.config import config_from_dict
from pait.executors import run_grid
from pait.report import build_report

ray = pytest.importorskip("ray")
HERE = Path(__file__).parent


def _config(name: str, scores: list[str], sparsities: tuple[float, ...] = (0.3, 0.6), pack: int = 1) -> object:
    return config_from_dict({
        "name": name, "plugins": ["tiny_plugin", "failing_scores"], "encoders": ["tiny_cnn"],
        "suite": {"name": "tiny", "protocol": "heldout", "calib_per_class": 4, "eval_per_class": 4},
        "scores": scores, "sparsities": list(sparsities), "sources": ["t0", "t1"],
        "finetune": {"epochs": 2, "lr": 0.05, "milestones": [1], "batch_size": 8, "pack": pack}, "device": "cpu",
    })


@pytest.fixture(scope="module")
def flaky_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("flaky")


@pytest.fixture(scope="module")
def local_ray(flaky_dir):
    saved = dict(os.environ)
    # workers started by this local Ray inherit the environment: the plugin's folder and the marker folder
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    os.environ["PAIT_TEST_FLAKY_DIR"] = str(flaky_dir)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    os.environ.clear()
    os.environ.update(saved)


def test_ray_results_equal_local_results(tmp_path, local_ray):
    config = _config("grid", ["magnitude", "random"])
    local = run_grid(config, tmp_path / "local", show_progress=False)
    remote = run_grid(config, tmp_path / "ray", show_progress=False, executor="ray", gpus_per_unit=0)
    pd.testing.assert_frame_equal(local, remote)
    assert len(remote) == 2 * 2 * 2 * 3 * 3  # scores x sparsities x sources x targets x stages
    assert pd.read_parquet(tmp_path / "ray" / "grid" / "results.parquet").equals(remote)
    assert json.loads((tmp_path / "ray" / "grid" / "failures.json").read_text()) == []


def test_a_one_time_failure_is_retried_and_the_grid_completes(tmp_path, local_ray, flaky_dir):
    table = run_grid(_config("flaky", ["flaky_once"]), tmp_path, show_progress=False, executor="ray",
                     gpus_per_unit=0, retries=2)
    assert (flaky_dir / "failed-once").exists()  # the failure did happen
    assert len(table) == 2 * 2 * 3 * 3 and table.accuracy.notna().all()
    assert json.loads((tmp_path / "flaky" / "failures.json").read_text()) == []


def test_a_unit_failing_after_its_retries_is_reported_and_the_rest_completes(tmp_path, local_ray):
    table = run_grid(_config("broken", ["magnitude", "always_fails"]), tmp_path, show_progress=False,
                     executor="ray", gpus_per_unit=0, retries=1)
    assert set(table.score) == {"magnitude"} and len(table) == 2 * 2 * 3 * 3
    failures = json.loads((tmp_path / "broken" / "failures.json").read_text())
    assert len(failures) == 4 and {f["score"] for f in failures} == {"always_fails"}
    assert all("injected permanent failure" in f["error"] for f in failures)
    report = build_report(tmp_path / "broken").read_text()
    assert "Failed units" in report and report.count("always_fails") >= 4


def _recovery_seconds(out: Path) -> list:
    """The recovery_seconds of every unit stage under ``out``."""
    return [json.loads(p.read_text())["recovery_seconds"] for p in sorted((out / "stages").glob("unit/*/metrics.json"))]


def test_ray_packs_sparsities_as_the_local_executor_does(tmp_path, local_ray):
    packed = _config("packed", ["magnitude"], sparsities=(0.2, 0.5, 0.8), pack=3)
    local = run_grid(packed, tmp_path / "local", show_progress=False)
    remote = run_grid(packed, tmp_path / "ray", show_progress=False, executor="ray", gpus_per_unit=0)
    pd.testing.assert_frame_equal(local, remote, check_exact=True)
    assert len(remote) == 3 * 2 * 3 * 3  # sparsities x sources x targets x stages
    one_at_a_time = run_grid(_config("packed", ["magnitude"], sparsities=(0.2, 0.5, 0.8)), tmp_path / "single",
                             show_progress=False)
    # packed re-training leaves recovery_seconds unrecorded (null) in each unit's metrics, one at a time records it:
    # so equality above means Ray re-trained them packed (comparing losses would rely on the kernels' rounding)
    assert _recovery_seconds(tmp_path / "ray") == [None] * 6
    assert len(_recovery_seconds(tmp_path / "single")) == 6 and None not in _recovery_seconds(tmp_path / "single")
    assert np.allclose(one_at_a_time.loss, remote.loss, atol=1e-4)  # and packing changes only the rounding
    before = snapshot(tmp_path / "ray")
    again = run_grid(packed, tmp_path / "ray", show_progress=False, executor="ray", gpus_per_unit=0)
    assert snapshot(tmp_path / "ray") == before and again.equals(remote)  # a rerun writes nothing


def test_a_local_run_after_a_failed_ray_run_shows_no_stale_failures(tmp_path, local_ray):
    run_grid(_config("again", ["magnitude", "always_fails"]), tmp_path, show_progress=False, executor="ray",
             gpus_per_unit=0, retries=0)
    assert json.loads((tmp_path / "again" / "failures.json").read_text())
    run_grid(_config("again", ["magnitude"]), tmp_path, show_progress=False)
    assert json.loads((tmp_path / "again" / "failures.json").read_text()) == []
    assert "Failed units" not in build_report(tmp_path / "again").read_text()


def test_seeds_and_recoveries_run_in_both_executors_and_resume(tmp_path, local_ray):
    config = dataclasses.replace(_config("axes", ["random"]), seeds=(0, 1),
                                 recoveries=("none", "obs", "sequential", "bn+sequential", "sgd"))
    local = run_grid(config, tmp_path / "local", show_progress=False)
    remote = run_grid(config, tmp_path / "ray", show_progress=False, executor="ray", gpus_per_unit=0)
    pd.testing.assert_frame_equal(local, remote)
    assert set(remote.seed) == {0, 1} and set(remote.recovery) == set(config.recoveries)
    log = tmp_path / "ray" / "axes" / "stages.log"
    computed = log.read_text().count("\n")
    again = run_grid(config, tmp_path / "ray", show_progress=False, executor="ray", gpus_per_unit=0)
    assert log.read_text().count("\n") == computed  # a rerun resumes: nothing is computed twice
    pd.testing.assert_frame_equal(again, remote)


@pytest.mark.parametrize("options,message", [
    ({"cpus_per_unit": 3}, "each unit asks for 3 CPU(s), the local Ray has 2"),
    ({"gpus_per_unit": 0.5}, "each unit asks for 0.5 GPU(s), the local Ray has 0"),
])
def test_shares_the_local_ray_never_grants_are_refused_before_any_unit(tmp_path, local_ray, options, message):
    from pait.errors import ConfigError

    if options.get("gpus_per_unit") and ray.cluster_resources().get("GPU", 0):
        pytest.skip("this Ray has GPUs")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_grid(_config("never", ["magnitude"]), tmp_path, show_progress=False, executor="ray", **options)
    assert not any((tmp_path / "never" / name).exists() for name in ("failures.json", "results.parquet"))


def test_random_weights_are_the_same_network_in_every_ray_task(tmp_path, local_ray):
    """Each Ray task builds the encoder in its own worker: heads, scores and units must see one network."""
    config = random_grid()
    local = run_grid(config, tmp_path / "local", show_progress=False)
    first = run_grid(config, tmp_path / "ray-1", show_progress=False, executor="ray", gpus_per_unit=0)
    second = run_grid(config, tmp_path / "ray-2", show_progress=False, executor="ray", gpus_per_unit=0)
    pd.testing.assert_frame_equal(first, local, check_exact=True)
    pd.testing.assert_frame_equal(second, first, check_exact=True)
    assert_sparsity_zero_is_unpruned(first)
