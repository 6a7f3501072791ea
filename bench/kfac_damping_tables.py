"""Markdown tables of ``bench/kfac_damping.py``'s JSON: the sweep per source and the per-layer diagnostics.

    python bench/kfac_damping_tables.py [bench/results/kfac_damping.json] [--layers 12]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def sweep_table(rows: list[dict]) -> str:
    lines = ["| variant | IoU pruned vs magnitude | IoU pruned vs default | conv_head density | source acc | mean transfer acc |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['variant']} | fails: {r['error']} | | | | |")
            continue
        lines.append(f"| {r['variant']} | {r['iou_magnitude']:.3f} | {r['iou_default']:.3f} | "
                     f"{r['density_conv_head']:.3f} | {r['source_acc']:.3f} | {r['transfer_acc']:.3f} |")
    return "\n".join(lines)


def diagnostics_table(layers: list[dict], densities: dict[str, dict[str, float]], last: int) -> str:
    head = "".join(f" {k} |" for k in densities)
    lines = ["| layer | A size | rank A | cond A (range) | damping / floor A | e_A | B size | rank B | cond B (range) "
             f"| damping / floor B | B eig < damping | e_B | elasticity |{head}", "|---" * (13 + len(densities)) + "|"]
    for d in layers[-last:] if last else layers:
        a, b = d["A"], d["B"]
        dens = "".join(f" {v.get(d['name'], float('nan')):.2f} |" for v in densities.values())
        lines.append(f"| {d['name']} | {a['size']} | {a['rank']} | {a['condition_on_range']:.1e} | {_floor(a):.2g} "
                     f"| {a['damping_share']:.2f} | {b['size']} | {b['rank']} | {b['condition_on_range']:.1e} "
                     f"| {_floor(b):.2g} | {b['below_damping']:.2f} "
                     f"| {b['damping_share']:.2f} | {d['score_damping_elasticity']:.2f} |{dens}")
    return "\n".join(lines)


def _floor(f: dict) -> float:
    """The damping added over the factor's round-off floor rtol * lambda_max (< 1: the damping is below it)."""
    return f["damping"] / (f["rtol"] * f["eig_max"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", nargs="?", default="bench/results/kfac_damping.json")
    parser.add_argument("--layers", type=int, default=0, help="only the last N layers of the diagnostics (0: all)")
    parser.add_argument("--damping", default="relative 1e-03", help="which damping's diagnostics to show")
    args = parser.parse_args()
    data = json.loads(Path(args.path).read_text())
    for source, res in data["sources"].items():
        by_name = {r["variant"]: r for r in res["rows"] if "error" not in r}
        densities = {f"density {k}": by_name[k]["density"] for k in ("magnitude", "fisher_diag", f"kfac {args.damping}")
                     if k in by_name}
        print(f"### source {source} (sparsity {data['sparsity']}, factors {res['factor_seconds']:.0f} s)\n")
        print(sweep_table(res["rows"]) + "\n")
        print(f"Diagnostics at {args.damping}:\n")
        print(diagnostics_table(res["diagnostics"][args.damping], densities, args.layers) + "\n")


if __name__ == "__main__":
    main()
