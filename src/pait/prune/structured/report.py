"""The Markdown rendering of a structured ``pait prune`` report."""

from __future__ import annotations

from typing import Any

NOTE = ("Structured pruning removes whole channels, heads and neurons: the saved module is physically "
        "smaller, so dense CPU kernels do less work (unlike unstructured masks).")


def latency_line(latency: dict[str, Any]) -> str:
    """One line: target, achieved (paired median and range over repeats) and predicted speed-up, and where."""
    t = latency["timing"]
    return (f"Latency: target {latency['target_speedup']:.2f}x, achieved {latency['achieved_speedup']:.2f}x "
            f"[{latency['achieved_min']:.2f}, {latency['achieved_max']:.2f}] in {t['runtime']}, {t['threads']} "
            f"threads, batch {t['batch']}, {t['input_size']} px (predicted {latency['predicted_speedup']:.2f}x by "
            f"the additive table, error {latency['prediction_error']:+.1%}).")


def markdown(report: dict[str, Any]) -> str:
    """A short Markdown rendering of a structured ``pait prune`` report."""
    o, acc, size = report["options"], report["accuracy"], report["size"]
    rounding = f" (each layer keeps a multiple of {o['round_to']} channels)" if o.get("round_to", 1) > 1 else ""
    amount = (f"target speed-up {o['target_speedup']}" if o.get("target_speedup") is not None
              else f"channel ratio {o['ratio']}")
    lines = [
        f"# Structurally pruned {o['encoder']}",
        "",
        f"Score `{o['score']}`, {amount}{rounding}, recovery `{o['recovery']}`; data "
        f"`{report['data']['folder']}` ({len(report['data']['classes'])} classes; {report['data']['calibration']} "
        f"calibration and {report['data']['evaluation']} held-out images, seed {o['seed']}).",
        "",
        "| | before | after |",
        "|---|---|---|",
        f"| held-out accuracy (head fit on the unpruned encoder) | {acc['before']:.4f} | {acc['after']:.4f} |",
        f"| held-out accuracy (head refit on the pruned encoder) | | {acc['after_refit_head']:.4f} |",
        f"| parameters | {size['params_before']:,} | {size['params_after']:,} |",
        f"| MACs per image | {size['macs_before']:,} | {size['macs_after']:,} |",
        "",
        "Units removed: " + ", ".join(f"{k} {v:.3f}" for k, v in report["removed_fraction"].items()) + ".",
        "",
        *([latency_line(report["latency"]), ""] if "latency" in report else []),
        NOTE,
        "",
        "## Per group", "", "| group | kind | units | kept |", "|---|---|---|---|",
    ]
    lines += [f"| {g['name']} | {g['kind']} | {g['units']} | {g['kept']} |" for g in report["groups"]]
    return "\n".join(lines) + "\n"
