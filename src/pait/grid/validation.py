"""Checks of a loaded config that run before any heavy work: values in range, names registered."""

from __future__ import annotations

from pait.config import ExperimentConfig
from pait.errors import ConfigError
from pait.prune.options import RECOVERIES
from pait.tasks import PROTOCOLS, SUITES

PRECISIONS = ("auto", "fp32", "bf16")


def validate_config(config: ExperimentConfig) -> None:
    """Raise a ConfigError naming the first bad value, an unregistered encoder, score or suite name,
    or a score option the score does not take."""
    if not config.encoders:
        raise ConfigError("the config names no encoder")
    if not config.scores:
        raise ConfigError("the config names no score")
    if not config.sparsities:
        raise ConfigError("the config names no sparsity")
    for s in config.sparsities:
        if not 0.0 <= s < 1.0:
            raise ConfigError(f"sparsity must lie in [0, 1), got {s} (a fraction: 0.36 means 36%)")
    suite = config.suite
    if suite.protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {suite.protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    if suite.calib_per_class < 1 or suite.eval_per_class < 1:
        raise ConfigError(f"calib_per_class and eval_per_class must be at least 1, got "
                          f"{suite.calib_per_class} and {suite.eval_per_class}")
    if config.sources is not None and (not config.sources or len(set(config.sources)) != len(config.sources)):
        raise ConfigError(f"sources must be a non-empty list without repeats, got {list(config.sources)}")
    if not config.seeds or len(set(config.seeds)) != len(config.seeds) or min(config.seeds) < 0:
        raise ConfigError(f"seeds must be a non-empty list of distinct integers >= 0, got {list(config.seeds)}")
    unknown = [r for r in config.recoveries if r not in RECOVERIES]
    if unknown or not config.recoveries or len(set(config.recoveries)) != len(config.recoveries):
        raise ConfigError(f"recoveries must be a non-empty list of distinct names among {', '.join(RECOVERIES)}, "
                          f"got {list(config.recoveries)}")
    if config.precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {config.precision!r}")
    ft = config.finetune
    if ft.epochs < 0 or ft.batch_size < 1 or ft.lr < 0:
        raise ConfigError(f"finetune: epochs >= 0, batch_size >= 1 and lr >= 0 needed, got {ft}")
    if ft.pack < 1:
        raise ConfigError(f"finetune.pack must be at least 1, got {ft.pack}")
    check_names(config)


def check_names(config: ExperimentConfig) -> None:
    """Every encoder, score and suite name of ``config`` is registered, else a ConfigError lists the known
    ones; every entry of ``score_options`` names a score and options it takes."""
    from pait.encoders import ENCODERS
    from pait.scores import SCORES, check_score_options

    known = {"encoder": ENCODERS, "score": SCORES, "suite": SUITES}
    used = {
        "encoder": [e.name for e in config.encoders],
        "score": list(config.scores),
        "suite": [config.suite.name],
    }
    problems = []
    for kind, names in used.items():
        unknown = [n for n in dict.fromkeys(names) if n not in known[kind]]
        if unknown:
            problems.append(f"unknown {kind}(s) {', '.join(unknown)} (known: {', '.join(known[kind].known())})")
    if problems:
        raise ConfigError("; ".join(problems))
    check_score_options(config.score_options)
