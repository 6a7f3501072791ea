"""Regenerate the tables and figures of docs/findings.md from the committed study results.

    python scripts/findings.py                 # from docs/findings/<study>/ (committed results) only
    python scripts/findings.py --runs runs     # first copy each study's results from runs/<study>/
    python scripts/findings.py --runs runs --only study-efficientnet_lite0   # copy one study
    python scripts/findings.py --runs runs --only study-x --add-seeds   # add a run's seeds to the committed copy

``--runs`` copies ``results.parquet``, ``config.json`` and ``failures.json`` of every study in STUDIES
found under the run root, and writes ``agreement.csv``: the per-pair mask and score agreement across
sources, computed from the run's stage cache (masks and scores are too large to commit), and
``recovery_seconds.csv``: each unit's recovery wall time, where the run recorded it. Everything
else is computed from those committed files: ``docs/findings/tables.md`` (results with 95% CIs over
source x seed, P1 own mask vs other sources' masks, each score against `magnitude` paired, P1 / P2 /
second-order verdicts, the allocation decomposition where a study has transplant masks, mask agreement, the P2 dose-response across the recovery recipes of RECIPES, and
P1 and P2 on the suites of SUITE_STUDIES) and the figures ``docs/findings/<study>/fig3.png``,
``p1_own_vs_other.png`` and ``agreement.png``.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
from pathlib import Path

import pandas as pd

from pait.cache import write_atomic
from pait.errors import ConfigError, PaitError
from pait.report.allocation_blocks import allocation_blocks
from pait.report.build import fig3_caption, results_table, what_is_cut
from pait.report.chance import suite_chance
from pait.report.claims import p2_dose_table, p2_table
from pait.report.document import Block, Figure, Heading, Table, Text, to_markdown
from pait.report.fig3 import plot_fig3
from pait.report.own_mask_blocks import own_mask_blocks
from pait.report.p1 import agreement_summary, mask_agreement, plot_agreement
from pait.report.p2_blocks import p2_blocks, p2_dose_blocks
from pait.report.pairwise import pairwise_table
from pait.report.recoveries import recovery_pair_blocks
from pait.report.run_folder import CONFIG_FILE, RESULTS_FILE, read_json, read_results, read_run_config
from pait.report.stat_blocks import claim_blocks, pairwise_blocks
from pait.report.suite_compare import SuiteRun
from pait.report.suite_compare_blocks import suite_compare_blocks
from pait.report.suite_facts import suite_facts
from pait.report.tables import level_name

ROOT = Path(__file__).resolve().parents[1]
FINDINGS = ROOT / "docs" / "findings"
# the studies whose results are found under docs/findings/ (or --runs) are used, in this order
STUDIES = ("study-efficientnet_lite0", "study-vits14_dinov2_imgfocus", "study-efficientnet_lite0_paper_lr",
           "study-efficientnet_lite0_recoveries", "study-vits14_dinov2_imgfocus_recoveries",
           "study-efficientnet_lite0_channels", "study-vits14_dinov2_imgfocus_channels",
           "study-efficientnet_lite0_channels_sequential", "study-efficientnet_lite0_allocation_zeroshot",
           "study-efficientnet_lite0_allocation", "study-vits14_dinov2_imgfocus_allocation",
           "study-efficientnet_lite0_p2_steps", "study-efficientnet_lite0_p2_lr", "study-vits14_dinov2_imgfocus_p2",
           "study-efficientnet_lite0_emoji10")
# the recovery recipes of the P2 dose-response table: study -> label, those found under docs/findings/ shown
RECIPES = {"study-efficientnet_lite0": "16 steps, lr 3e-3", "study-efficientnet_lite0_p2_steps": "64 steps, lr 3e-3",
           "study-efficientnet_lite0_p2_lr": "16 steps, lr 3e-2",
           "study-vits14_dinov2_imgfocus_p2": "ViT, 16 steps, lr 5e-5"}
# the suites compared side by side (P1 and P2 on the settings both studies hold): study -> label
SUITE_STUDIES = {"study-efficientnet_lite0": "embedded (grey)", "study-efficientnet_lite0_emoji10": "emoji10 (colour)"}
FAILURES_FILE = "failures.json"
COPIED = (RESULTS_FILE, CONFIG_FILE, FAILURES_FILE)
AGREEMENT_FILE = "agreement.csv"
SECONDS_FILE = "recovery_seconds.csv"  # per unit: the recovery's wall time, where the run recorded it
STRUCTURED_BASELINE = "taylor"  # Torch-Pruning's best built-in group importance here (BENCHMARKS.md)


def copy_run(run_root: Path, study: str, add: bool = False) -> bool:
    """Copy one study's results from ``run_root/study`` (and its mask agreement); False if it is absent. With
    ``add``, the run's seeds are added to (or replace) those of the committed copy (``add_seeds``)."""
    source = run_root / study
    if not (source / RESULTS_FILE).is_file():
        return False
    target = FINDINGS / study
    tables = {AGREEMENT_FILE: mask_agreement(source), SECONDS_FILE: recovery_seconds(source)}
    if add and (target / RESULTS_FILE).is_file():
        tables = add_seeds(source, target, tables)
    else:
        target.mkdir(parents=True, exist_ok=True)
        for name in COPIED:
            if (source / name).is_file():
                shutil.copyfile(source / name, target / name)
    tables[AGREEMENT_FILE].to_csv(target / AGREEMENT_FILE, index=False, float_format="%.6g")
    seconds = tables[SECONDS_FILE]
    if seconds["seconds"].notna().any():
        seconds.to_csv(target / SECONDS_FILE, index=False, float_format="%.4g")
    else:  # no stale times from an earlier copy
        (target / SECONDS_FILE).unlink(missing_ok=True)
    return True


def _other_seeds(table: pd.DataFrame, seeds: set[int]) -> pd.DataFrame:
    """The rows of a per-unit (``seed``) or per-pair (``seed_a``, ``seed_b``) table that touch none of ``seeds``."""
    columns = [c for c in ("seed", "seed_a", "seed_b") if c in table]
    return table[~table[columns].isin(seeds).any(axis=1)]


def add_seeds(source: Path, target: Path, tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """A study run seed by seed (on one machine after another): write to ``target`` its committed results with the
    seeds of the run folder ``source`` replaced by the run's, its config's ``seeds`` the union and its failures
    both lists; return the run's per-seed ``tables`` merged with ``target``'s in the same way. Agreement pairs
    across a committed and an added seed are not computed (their masks are in two stage caches). The two configs
    must agree on everything but ``seeds`` (a ConfigError naming the keys that differ)."""
    config, committed_config = read_run_config(source), read_run_config(target)
    differ = sorted(k for k in config.keys() | committed_config.keys()
                    if k != "seeds" and config.get(k) != committed_config.get(k))
    if differ:
        raise ConfigError(f"{source / CONFIG_FILE}: {', '.join(differ)} differ from {target / CONFIG_FILE}; "
                          "only the seeds of a run can be added to a committed study")
    read_results(source), read_results(target)  # checked, then read as written (transplant scores not renamed)
    results, committed = pd.read_parquet(source / RESULTS_FILE), pd.read_parquet(target / RESULTS_FILE)
    seeds = {int(s) for s in results.seed.unique()}
    merged = pd.concat([_other_seeds(committed, seeds), results], ignore_index=True)
    buffer = io.BytesIO()
    merged.to_parquet(buffer, index=False)
    write_atomic(target / RESULTS_FILE, buffer.getvalue())
    config["seeds"] = sorted(seeds | {int(s) for s in committed_config.get("seeds") or []})
    write_atomic(target / CONFIG_FILE, json.dumps(config, indent=1).encode())
    failures = [read_json(f, list) if f.is_file() else [] for f in (target / FAILURES_FILE, source / FAILURES_FILE)]
    write_atomic(target / FAILURES_FILE, json.dumps(failures[0] + failures[1], indent=1).encode())
    return {name: pd.concat([_other_seeds(pd.read_csv(target / name), seeds), table], ignore_index=True)
            if (target / name).is_file() else table for name, table in tables.items()}


def recovery_seconds(run: Path) -> pd.DataFrame:
    """One row per unit of a run folder: its keys and the wall time of its recovery (NaN where not recorded:
    older units, or a unit whose stage folder is gone)."""
    index = run / "units.json"
    rows = []
    for unit in json.loads(index.read_text()) if index.is_file() else []:
        metrics = run / unit["unit_dir"] / "metrics.json"
        seconds = json.loads(metrics.read_text()).get("recovery_seconds") if metrics.is_file() else None
        rows.append({"encoder": unit["encoder"], "score": unit["score"], "sparsity": unit["sparsity"],
                     "source": unit["source"], "seed": unit.get("seed", 0), "recovery": unit.get("recovery", "sgd"),
                     "seconds": seconds})
    columns = ["encoder", "score", "sparsity", "source", "seed", "recovery", "seconds"]
    return pd.DataFrame(rows, columns=columns).astype({"seconds": float})


def seconds_blocks(folder: Path) -> list[Block]:
    """Median wall time of each recovery per (encoder, score, sparsity), from the committed per-unit times."""
    path = folder / SECONDS_FILE
    if not path.is_file():
        return []
    keys = ["encoder", "score", "sparsity", "recovery"]
    table = pd.read_csv(path).dropna().groupby(keys).seconds.agg(["median", "min", "max", "count"]).reset_index()
    rows = [[r.encoder, r.score, f"{r.sparsity:.2%}", r.recovery, f"{r.median:.1f}", f"{r.min:.1f} to {r.max:.1f}",
             str(r.count)] for r in table.itertuples()]
    return [Heading("Recovery wall time", 3),
            Text("Seconds of each unit's recovery step alone (evaluation excluded), as run (how the study was run, "
                 "and what else shared the machine, is in BENCHMARKS.md)."),
            Table(["encoder", "score", "sparsity", "recovery", "median s", "range s", "units"], rows)]


def agreement_blocks(folder: Path) -> list[Block]:
    """The mask and score agreement across sources (mean over source pairs and seeds), with its figure."""
    path = folder / AGREEMENT_FILE
    pairs = pd.read_csv(path) if path.is_file() else pd.DataFrame()
    if pairs.empty:
        return []
    rows = [[r.encoder, r.score, f"{r.sparsity:.2%}", f"{r.iou:.3f}", f"{r.iou_random:.3f}", f"{r.spearman:.3f}",
             str(r.pairs)] for r in agreement_summary(pairs).itertuples()]
    figure = plot_agreement(pairs, folder / "agreement.png")
    return [Heading("Mask agreement across sources", 3),
            Text("IoU of the pruned sets of two sources' masks (random masks: p / (2 − p)) and Spearman ρ of their "
                 "scores, mean over source pairs and seeds."),
            Table(["encoder", "score", "sparsity", "IoU pruned", "IoU random", "Spearman ρ", "pairs"], rows),
            Figure(f"{folder.name}/{figure.name}", f"{folder.name}: agreement of masks and scores across sources.")]


def study_blocks(folder: Path) -> list[Block]:
    """Every table of one study, demoted one heading level below the study's own heading."""
    results = read_results(folder)
    config = read_run_config(folder) if (folder / CONFIG_FILE).is_file() else {}
    facts = suite_facts(config.get("suite"))
    mean_chance = facts.chance(dict.fromkeys(results.target))
    fig3 = plot_fig3(results, folder / "fig3.png", mean_chance)
    chance = suite_chance(config["suite"]) if config else {}
    pairwise, p2 = pairwise_table(results, chance=chance), p2_table(results, chance=chance, domains=facts.domains)
    cut = [Text("Structured pruning, " + what_is_cut(config))] if config.get("structure") == "channels" else []
    blocks: list[Block] = [Heading(folder.name, 2), *cut, Heading("Source and mean transfer accuracy", 3),
                           results_table(results),
                           Figure(f"{folder.name}/{fig3.name}", f"{folder.name}: {fig3_caption(results, mean_chance)}")]
    sections = (own_mask_blocks(results, facts, folder, folder.name, level_name(results)) + pairwise_blocks(pairwise)
                + allocation_blocks(results) + recovery_pair_blocks(results) + p2_blocks(p2) + claim_blocks(pairwise, p2))
    if cut and STRUCTURED_BASELINE in config.get("scores", ()):  # pait's group scores against Torch-Pruning's
        sections += pairwise_blocks(pairwise_table(results, STRUCTURED_BASELINE), STRUCTURED_BASELINE)
    blocks += [Heading(b.text, 3) if isinstance(b, Heading) else b for b in sections]
    return blocks + seconds_blocks(folder) + agreement_blocks(folder)


def suite_run(folder: Path) -> SuiteRun:
    """One committed study: its results, and its suite's facts and per-task chance (none without a config)."""
    suite = read_run_config(folder)["suite"] if (folder / CONFIG_FILE).is_file() else None
    return SuiteRun(read_results(folder), suite_facts(suite), suite_chance(suite))


def dose_blocks(findings: Path = FINDINGS) -> list[Block]:
    """The P2 dose-response section over the recipes of RECIPES found under ``findings`` (none found: no section)."""
    runs, domains, chance = {}, {}, {}
    for study, label in RECIPES.items():
        folder = findings / study
        if not (folder / RESULTS_FILE).is_file():
            continue
        run = suite_run(folder)
        runs[label] = run.results
        domains |= run.facts.domains
        chance |= run.chance
    return p2_dose_blocks(p2_dose_table(runs, domains, chance=chance)) if runs else []


def suite_blocks(findings: Path = FINDINGS) -> list[Block]:
    """P1 and P2 on the suites of SUITE_STUDIES side by side, when at least two are found under ``findings``."""
    runs = {label: suite_run(findings / study) for study, label in SUITE_STUDIES.items()
            if (findings / study / RESULTS_FILE).is_file() and (findings / study / CONFIG_FILE).is_file()}
    return suite_compare_blocks(runs) if len(runs) > 1 else []


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, help="run root (pait run --out) to copy the studies' results from")
    parser.add_argument("--only", nargs="+", choices=STUDIES, metavar="STUDY",
                        help="with --runs: copy only these studies (default: every one found)")
    parser.add_argument("--add-seeds", action="store_true",
                        help="with --runs: add each run's seeds to the committed copy of its study (replacing those "
                             "seeds there) instead of replacing the copy: a study run seed by seed")
    args = parser.parse_args(argv)
    if args.runs is not None:
        copied = [s for s in args.only or STUDIES if copy_run(args.runs, s, args.add_seeds)]
        print(f"copied {', '.join(copied) or 'nothing'} from {args.runs}")
    folders = [FINDINGS / s for s in STUDIES if (FINDINGS / s / RESULTS_FILE).is_file()]
    if not folders:
        print(f"no committed study results under {FINDINGS}", file=sys.stderr)
        return 2
    blocks: list[Block] = [
        Heading("Study tables (generated)", 1),
        Text("Written by `python scripts/findings.py` from the committed results under `docs/findings/`; do not edit "
             "by hand. The discussion is in [../findings.md](../findings.md).")]
    for folder in folders:
        blocks += study_blocks(folder)
    blocks += dose_blocks() + suite_blocks()
    (FINDINGS / "tables.md").write_text(to_markdown(blocks))
    print(f"wrote {FINDINGS / 'tables.md'} ({len(folders)} studies)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PaitError as err:  # a damaged or missing results file: one line, as the pait command prints
        print(f"findings: error: {err}", file=sys.stderr)
        sys.exit(2)
