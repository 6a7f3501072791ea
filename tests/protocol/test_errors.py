"""Bad input: one `pait: error:` line naming the culprit, exit code 2, before heavy work starts."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_imagenet import write_jpeg
from gridutil import tiny_config, write_config

from pait.cli import main


def run_error(tmp_path, capsys, config: dict, *overrides: str) -> str:
    path = write_config(tmp_path / "bad.yaml", config)
    code = main(["run", str(path), *overrides, "--out", str(tmp_path / "out"), "--quiet", "--no-report"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("pait: error: ") and "\n" not in err, (code, err)
    assert not (tmp_path / "out" / "stages").exists(), "heavy work started"
    return err


@pytest.mark.parametrize("overrides, message", [
    (["scores=[magnitude, nope]"], r"unknown score\(s\) nope \(known: magnitude, random"),
    (["encoders.0.name=nope"], r"unknown encoder\(s\) nope"),
    (["suite.name=nope"], r"unknown suite\(s\) nope"),
    (["sparsities=[0.5, 1.0]"], r"sparsity must lie in \[0, 1\), got 1.0"),
    (["finetune.epoch=3"], "unknown key\\(s\\) epoch"),
    (["encoders.3.name=x"], "index 3 out of range"),
    (["sources=[t9]"], "source task\\(s\\) t9 not in the suite"),
    (["suite.options.colours=2"], "unknown option\\(s\\) colours"),
    (["suite.protocol=heldout", "suite.calib_per_class=10"], "task 't0': class c0 has 12 images; .* needs 14"),
])
def test_bad_config_values_are_one_line_errors(tmp_path, capsys, overrides, message):
    err = run_error(tmp_path, capsys, tiny_config(), *overrides)
    assert pytest.importorskip("re").search(message, err), err


def folder_config(root) -> dict:
    suite = {"name": "imagefolder", "options": {"root": str(root), "tasks": {"a": ["x", "y"]}},
             "protocol": "paper", "calib_per_class": 2}
    return tiny_config(suite=suite, sparsities=[0.5], scores=["magnitude"])


def test_missing_class_folder_and_empty_class_are_named(tmp_path, capsys):
    write_jpeg(tmp_path / "images" / "x" / "0.jpg", 1)
    err = run_error(tmp_path, capsys, folder_config(tmp_path / "images"))
    assert f"class folder {tmp_path / 'images' / 'y'} does not exist" in err
    (tmp_path / "images" / "y").mkdir()
    err = run_error(tmp_path, capsys, folder_config(tmp_path / "images"))
    assert "holds no image" in err


def test_corrupt_image_is_named_or_skipped_by_option(tmp_path, capsys, caplog):
    for c in "xy":
        for k in range(3):
            write_jpeg(tmp_path / "images" / c / f"{k}.jpg", k)
    bad = tmp_path / "images" / "y" / "1.jpg"
    bad.write_bytes(b"not a jpeg")
    path = write_config(tmp_path / "c.yaml", folder_config(tmp_path / "images"))
    options = ["--out", str(tmp_path / "out"), "--quiet", "--no-report"]
    assert main(["run", str(path), *options]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"pait: error: cannot read image {bad}"), err
    assert main(["run", str(path), "suite.options.skip_bad_images=true", *options]) == 0
    assert f"skipping cannot read image {bad}" in caplog.text


def test_an_unreadable_image_is_named_or_skipped_by_option(tmp_path, capsys, monkeypatch):
    """An image that cannot be opened (EACCES) is fingerprinted as unreadable; decoding then names or skips it."""
    from PIL import Image

    import pait.fingerprints

    for c in "xy":
        for k in range(3):
            write_jpeg(tmp_path / "images" / c / f"{k}.jpg", k)
    bad = (tmp_path / "images" / "y" / "1.jpg").resolve()
    real_sha256, real_open = pait.fingerprints.file_sha256, Image.open

    def denied(real):
        def call(path, *args, **kwargs):
            if Path(path).resolve() == bad:
                raise PermissionError(13, "Permission denied", str(path))
            return real(path, *args, **kwargs)
        return call

    monkeypatch.setattr(pait.fingerprints, "file_sha256", denied(real_sha256))
    monkeypatch.setattr(Image, "open", denied(real_open))
    path = write_config(tmp_path / "c.yaml", folder_config(tmp_path / "images"))
    options = ["--out", str(tmp_path / "out"), "--quiet", "--no-report"]
    assert main(["run", str(path), *options]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pait: error: cannot read image ") and "1.jpg" in err and "Permission denied" in err, err
    assert main(["run", str(path), "suite.options.skip_bad_images=true", *options]) == 0
