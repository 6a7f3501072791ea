"""Transfer probes of ``pait prune``: heads fit on the unpruned encoder and frozen, accuracy before and after."""

import shutil

import numpy as np
import pytest
import torch
from colour_images import write_colour_folder
from PIL import Image
from torch import nn

from pait.encoders import Encoder, Preprocessing
from pait.errors import ConfigError, DataError
from pait.prune.data import folder_task
from pait.prune.probes import (encoder_features, fit_probes, probe_accuracies, probe_markdown, probe_report,
                               probe_sets)

CPU = torch.device("cpu")


def tiny_encoder() -> Encoder:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 12, 3, padding=1),
                          nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    return Encoder("tiny", model, Preprocessing(input_size=16, crop_pct=1.0), 12, lambda m, x: m(x))


def write_probe_folder(root, colours=((220, 220, 40), (40, 220, 220)), per_class=6, size=16):
    rng = np.random.default_rng(7)
    for c, colour in enumerate(colours):
        (root / f"kind{c}").mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(rng.normal(colour, 60, (size, size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / f"kind{c}" / f"{i}.png")
    return root


@pytest.fixture
def data(tmp_path):
    (tmp_path / "data").mkdir()
    return write_colour_folder(tmp_path / "data", 16)


def _ridge_by_hand(phi: np.ndarray, labels: np.ndarray, classes: int) -> np.ndarray:
    """(Phi^T Phi + I)^-1 Phi^T Y in float64, by least squares on the augmented system [Phi; I] xi = [Y; 0]."""
    y = np.eye(classes)[labels]
    a = np.vstack([phi, np.eye(phi.shape[1])])
    b = np.vstack([y, np.zeros((phi.shape[1], classes))])
    return np.linalg.lstsq(a, b, rcond=None)[0]


def _features(encoder, split) -> np.ndarray:
    with torch.no_grad():
        return encoder.features(encoder.preprocess.normalize(split.pixels)).double().numpy()


def test_heads_are_fit_on_the_unpruned_encoder_and_stay_frozen(data, tmp_path):
    encoder = tiny_encoder()
    probe = write_probe_folder(tmp_path / "probe")
    sets, note = probe_sets([probe], None, data, folder_task(data), 3, 3, seed=0)
    assert note == f"Probes: --probe {probe}." and [t.name for t in sets[0].tasks] == ["probe"]
    probes = fit_probes(encoder, sets, batch_size=4, device=CPU)
    (p,) = probes
    assert (len(p.calib), len(p.evaluation)) == (6, 6)
    unpruned_calib, unpruned_eval = _features(encoder, p.calib), _features(encoder, p.evaluation)
    by_hand = _ridge_by_hand(unpruned_calib, p.calib.labels.numpy(), 2)
    np.testing.assert_allclose(p.head.double().numpy(), by_hand, rtol=1e-4, atol=1e-5)
    assert p.before == np.mean((unpruned_eval @ p.head.double().numpy()).argmax(1) == p.evaluation.labels.numpy())
    frozen = p.head.clone()

    with torch.no_grad():  # "prune": zero half of the second conv's filters
        encoder.model[2].weight[::2] = 0
    (after,) = probe_accuracies(probes, encoder_features(encoder, 4, CPU))
    assert torch.equal(p.head, frozen), "the head changed after the encoder did"
    pruned_eval = _features(encoder, p.evaluation)
    assert not np.allclose(pruned_eval, unpruned_eval)
    assert after == np.mean((pruned_eval @ frozen.double().numpy()).argmax(1) == p.evaluation.labels.numpy())

    report = probe_report(probes, [after], note)
    assert report["probes"] == [{"name": "probe", "classes": ["kind0", "kind1"], "calibration": 6, "evaluation": 6,
                                 "before": p.before, "after": after}]
    assert report["probe_summary"]["mean_retention"] == pytest.approx(after / p.before)
    assert "| probe | 2 | 6 | 6 |" in probe_markdown(report)


def test_a_probe_suite_gives_its_tasks(data, tmp_path):
    sets, note = probe_sets([], "embedded", data, folder_task(data), 2, 1, seed=0)
    assert [t.name for t in sets[0].tasks] == ["digits-0-4", "digits-5-9", "clothing-a", "clothing-b"]
    assert sets[0].suite.name == "embedded" and sets[0].suite.calib_per_class == 2 and note.startswith("Probes:")


def test_default_probes_leave_out_the_embedded_task_whose_images_are_the_pruning_data(tmp_path):
    """A pruning folder made of digits-0-4's own images (PNG, lossless): that task is no transfer probe."""
    from pait.tasks import load_suite

    digits = load_suite("embedded")[0]
    root = tmp_path / "digits"
    for c in range(digits.num_classes):
        (root / digits.class_names[c]).mkdir(parents=True)
        for i in np.flatnonzero(digits.labels == c)[:4]:
            Image.fromarray(digits.sources[i]()[0].numpy()).save(root / digits.class_names[c] / f"{i}.png")
    sets, note = probe_sets([], None, root, folder_task(root), 2, 1, seed=0)
    assert [t.name for t in sets[0].tasks] == ["digits-5-9", "clothing-a", "clothing-b"]
    assert "left out, sharing images with --data: digits-0-4" in note
    (tmp_path / "colour").mkdir()
    colour = write_colour_folder(tmp_path / "colour", 16)
    sets, note = probe_sets([], None, colour, folder_task(colour), 2, 1, seed=0)
    assert len(sets[0].tasks) == 4 and "left out" not in note
    assert probe_sets([], None, colour, folder_task(colour), 2, 1, seed=0, default=False) == ([], "No probe (none asked for).")


def one_class(tmp_path, data):
    return write_probe_folder(tmp_path / "one", colours=((200, 200, 0),))


def copy_of_data(tmp_path, data):
    return shutil.copytree(data, tmp_path / "copy")


def unreadable(tmp_path, data):
    folder = write_probe_folder(tmp_path / "bad")
    (folder / "kind1" / "3.png").write_bytes(b"not a png")
    return folder


BAD = {  # probe folder -> the message's culprit
    "a probe folder with one class": (one_class, "probe folder {probe} has 1 class sub-folder(s)"),
    "a missing probe folder": (lambda t, d: t / "nowhere", "probe folder {probe} does not exist"),
    "the data folder itself": (lambda t, d: d, "--probe {probe} is the pruning data (--data {data})"),
    "a copy of the data folder": (copy_of_data, "--probe {probe} holds the same images as --data {data} (by content)"),
    "an unreadable image": (unreadable, "cannot read image {probe}/kind1/3.png"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_probe_folder_is_one_error_naming_it(data, tmp_path, case):
    make, culprit = BAD[case]
    probe = make(tmp_path, data)
    with pytest.raises((ConfigError, DataError)) as err:
        sets, _ = probe_sets([probe], None, data, folder_task(data), 3, 3, seed=0)
        fit_probes(tiny_encoder(), sets, 4, CPU)
    assert culprit.format(probe=probe, data=data) in str(err.value)
    assert "\n" not in str(err.value)


def test_an_unknown_suite_and_repeated_names_are_refused(data, tmp_path):
    with pytest.raises(ConfigError, match="--probe-suite: unknown suite 'nope'"):
        probe_sets([], "nope", data, folder_task(data), 3, 3, seed=0)
    first, second = write_probe_folder(tmp_path / "a" / "p"), write_probe_folder(tmp_path / "b" / "p", ((9, 9, 9), (99, 9, 9)))
    with pytest.raises(ConfigError, match="probe task name.s. p given more than once"):
        probe_sets([first, second], None, data, folder_task(data), 3, 3, seed=0)
