"""Recoveries compared pairwise on identical units: the table's statistics are those of hand-computed differences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pait.report.build import results_table
from pait.report.document import to_markdown
from pait.report.pairwise import pairwise_table
from pait.report.recoveries import recovery_pair_blocks, recovery_pairs_table
from pait.report.stats import crossed_paired
from pait.report.tables import BEFORE_RECOVERY

SOURCES, SEEDS, TARGETS = ["s0", "s1"], [0, 1, 2], ["s0", "s1", "s2"]
GAIN = {"none": 0.0, "obs": 0.10, "sequential": 0.12}  # after-recovery accuracy over the pruned one


def synthetic(recoveries=tuple(GAIN)) -> pd.DataFrame:
    """One score at one sparsity, every (recovery, source, seed) unit x targets x stages, with noise."""
    rng = np.random.default_rng(3)
    rows = []
    for source in SOURCES:
        for seed in SEEDS:
            pruned = {t: 0.6 + rng.normal(0, 0.02) for t in TARGETS}  # one mask per (source, seed): shared
            for recovery in recoveries:
                for target in TARGETS:
                    after = pruned[target] + GAIN[recovery] + (rng.normal(0, 0.01) if recovery != "none" else 0)
                    for stage, acc in (("unpruned", 0.8), ("pruned", pruned[target]), ("recovered", after)):
                        rows.append({"encoder": "enc", "score": "kfac", "sparsity": 0.4, "source": source,
                                     "recovery": recovery, "target": target, "is_source": target == source,
                                     "stage": stage, "accuracy": acc, "loss": 1 - acc, "seed": seed,
                                     "protocol": "heldout", "suite": "synthetic",
                                     "unit": f"{recovery}-{source}-{seed}"})
    return pd.DataFrame(rows)


def _by_hand(results: pd.DataFrame, recovery: str, baseline: str, transfer: bool) -> list[float]:
    out = []
    for source in SOURCES:
        for seed in SEEDS:
            accs = []
            for rec in (recovery, baseline):
                sel = results[(results.recovery == rec) & (results.source == source) & (results.seed == seed)
                              & (results.stage == "recovered")]
                accs.append(sel[sel.target != source].accuracy.mean() if transfer
                            else sel[sel.target == source].accuracy.iloc[0])
            out.append(accs[0] - accs[1])
    return out


def test_each_pair_is_the_paired_statistics_of_hand_differences():
    results = synthetic()
    table = recovery_pairs_table(results)
    pairs = set(zip(table.recovery, table.baseline))
    assert pairs == {("sequential", "obs"), ("obs", "none"), ("sequential", "none")}  # only pairs present
    for r in table.itertuples():
        hand = crossed_paired(_by_hand(results, r.recovery, r.baseline, r.metric == "transfer_acc"),
                              np.repeat(SOURCES, len(SEEDS)), np.tile(SEEDS, len(SOURCES)))
        assert r.n == hand.n == len(SOURCES) * len(SEEDS) and (r.sources, r.seeds) == (len(SOURCES), len(SEEDS))
        assert (r.mean, r.low, r.high, r.wilcoxon_p, r.sign_p) == pytest.approx(
            (hand.mean, hand.low, hand.high, hand.wilcoxon_p, hand.sign_p))
    seq_obs = table[(table.recovery == "sequential") & (table.metric == "transfer_acc")].set_index("baseline")
    assert seq_obs.loc["obs", "mean"] == pytest.approx(0.02, abs=0.01)
    assert seq_obs.loc["none", "mean"] == pytest.approx(0.12, abs=0.01)
    assert "`sequential` − `obs`" in to_markdown(recovery_pair_blocks(results))


def test_a_run_with_one_recovery_has_no_recovery_table():
    assert recovery_pair_blocks(synthetic(recoveries=("sequential",))) == []


def test_the_results_table_has_no_row_after_recovery_none():
    stages = {row[3] for row in results_table(synthetic()).rows}
    assert stages == {"zero-shot", "after obs", "after sequential", "unpruned"}


def test_pairwise_against_magnitude_has_no_after_none_rows():
    both = pd.concat([synthetic(), synthetic().assign(score="magnitude")], ignore_index=True)
    table = pairwise_table(both)
    assert set(zip(table.stage, table.recovery)) == {("pruned", BEFORE_RECOVERY), ("recovered", "obs"), ("recovered", "sequential")}
