"""Command-line options made from the config's fields, progress bars and logging for commands.

Every option of a setting comes from its field in agebatch.config: the flag (the field name
with dashes, or FLAGS below), the help text (the field's description) and the default shown
(the field's default). Options left out on the command line are left out of the config too,
so the config's own defaults apply.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from enum import Enum
from typing import Any, get_args

from pydantic.fields import FieldInfo

from agebatch import quiet
from agebatch.config import (
    PredictConfig,
    RunConfig,
    Settings,
    parse_age_bounds,
    parse_day,
    parse_region,
    parse_timezone,
)
from agebatch.errors import InputError

log = logging.getLogger("agebatch")
DASK_LOG_ENV = "DASK_LOGGING__DISTRIBUTED"  # Dask config logging.distributed: its loggers' level

# Flags that are not simply the field's name with dashes.
FLAGS = {"window_before_s": "--window-before", "window_after_s": "--window-after"}
METAVARS = {
    "window_before_s": "S",
    "window_after_s": "S",
    "age_groups": "A,B,…",
    "face_region": "X0,Y0,X1,Y1",
    "margin": "K",
    "max_teen_miss": "SHARE",
    "policy": "FILE",
    "face_regions": "FILE",
    "model": "MODEL.keras",
    "affinity_days": "DAYS",
    "min_receipts": "N",
    "reports": "DIR",
    "dask_workers": "N",
    "dask_address": "tcp://HOST:PORT",
    "shard_size": "N",
    "gpu_limit": "NAME",
    "restricted_out": "DIR",
    "min_cell_receipts": "K",
    "retention_days": "N",
    "image_size": "PX",
    "limit": "N",
    "transactions_format": "FILE.toml",
}
PARSERS: dict[str, Callable[[str], object]] = {
    "age_groups": parse_age_bounds,
    "face_region": parse_region,
    "timezone": parse_timezone,
}
GROUPS = {
    "photo_kind": "face finding",
    "face_region": "face finding",
    "face_regions": "face finding",
    "legal_age": "alcohol compliance policy",
    "challenge_age": "alcohol compliance policy",
    "margin": "alcohol compliance policy",
    "policy": "alcohol compliance policy",
    "max_teen_miss": "alcohol compliance policy",
    "affinity_days": "offers (age_group_affinity)",
    "min_receipts": "offers (age_group_affinity)",
    "affinity_confidence": "offers (age_group_affinity)",
    "affinity_correction": "offers (age_group_affinity)",
    "dask_workers": "Dask (docs/dask.md)",
    "dask_address": "Dask (docs/dask.md)",
    "shard_size": "Dask (docs/dask.md)",
    "gpu_limit": "Dask (docs/dask.md)",
    "restricted_out": "privacy",
    "min_cell_receipts": "privacy",
    "retention_days": "privacy",
    "coverage_margin": "coverage gate",
    "coverage_days": "coverage gate",
    "coverage_min_count": "coverage gate",
    "accept_low_coverage": "coverage gate",
    "transactions_format": "transactions (docs/inputs.md)",
    "accept_quarantine": "transactions (docs/inputs.md)",
    "accept_worse_day": "coverage gate",
}


def arg_type(parse: Callable[[str], object]) -> Callable[[str], object]:
    """An argparse type from a parser that raises InputError: usage error, exit status 2."""

    def checked(text: str) -> object:
        try:
            return parse(text)
        except InputError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    checked.__name__ = parse.__name__
    return checked


DAY = arg_type(parse_day)


def flag(name: str) -> str:
    """The command-line flag of a config field."""
    return FLAGS.get(name, "--" + name.replace("_", "-"))


def add_config_options(
    parser: argparse.ArgumentParser,
    model: type[Settings],
    *,
    only: Iterable[str] | None = None,
    skip: Iterable[str] = (),
    required: bool = True,
) -> None:
    """Add an option for each field of a config model (or those in `only`), grouped as in
    GROUPS; required fields are required options unless required=False (env may give them)."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    names = list(only) if only is not None else list(model.model_fields)
    for name in names:
        if name in skip:
            continue
        field = model.model_fields[name]
        target = parser
        if name in GROUPS:
            title = GROUPS[name]
            target = groups.setdefault(title, parser.add_argument_group(title))
        target.add_argument(flag(name), dest=name, **_argument(name, field, required))


def _argument(name: str, field: FieldInfo, required: bool) -> dict[str, Any]:
    """argparse keywords for one field: type, choices, help with the default, metavar."""
    kinds = [a for a in get_args(field.annotation) if a is not type(None)] or [field.annotation]
    kind = kinds[0]
    if name in PARSERS:
        kind = arg_type(PARSERS[name])
    described = field.description or ""
    keywords: dict[str, Any] = {"default": argparse.SUPPRESS}
    if field.is_required():
        keywords["required"] = required
        keywords["help"] = described
    elif "(default:" in described:  # the description says the default in words: once is enough
        keywords["help"] = described
    else:
        keywords["help"] = f"{described} (default: {_shown(field)})"
    if kind is bool:
        keywords["action"] = argparse.BooleanOptionalAction
        return keywords
    if isinstance(kind, type) and issubclass(kind, Enum):
        keywords["choices"] = [member.value for member in kind]
        kind = str
    keywords["type"] = kind if callable(kind) else str
    if name in METAVARS:
        keywords["metavar"] = METAVARS[name]
    return keywords


def _shown(field: FieldInfo) -> str:
    """A field's default as a user would type it."""
    if field.default_factory is not None:
        return "see help"
    value = field.default
    if value is None:
        return "none"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def given(args: argparse.Namespace, model: type[Settings]) -> dict[str, Any]:
    """The config fields given on the command line (options left out are not in args)."""
    return {name: value for name, value in vars(args).items() if name in model.model_fields}


def run_config(args: argparse.Namespace, env: Mapping[str, str] | None = None) -> RunConfig:
    """The RunConfig of a command: AGEBATCH_* environment variables, then the flags given."""
    return RunConfig.build({**RunConfig.from_env(env), **given(args, RunConfig)})


def predict_config(args: argparse.Namespace) -> PredictConfig:
    """The PredictConfig of a command from the flags given."""
    return PredictConfig.build(given(args, PredictConfig))


class ProgressBars:
    """Hands out tqdm progress bars (on stderr, only on a terminal) and closes them.

    A bar stays one line: log lines printed while it runs go above it, and it closes as soon
    as it is full, before the stage logs its summary.
    """

    def __enter__(self) -> ProgressBars:
        from tqdm.contrib.logging import logging_redirect_tqdm

        self._bars: list = []
        self._logs_above = logging_redirect_tqdm()
        self._logs_above.__enter__()
        return self

    def new(self, total: int) -> Callable[[int], None]:
        """A bar for `total` photos; returns its update callback."""
        from tqdm import tqdm

        bar = tqdm(total=total, unit="photo", desc="predict", disable=None, file=sys.stderr)
        self._bars.append(bar)

        def update(n: int) -> None:
            bar.update(n)
            if bar.n >= total:
                bar.close()

        return update

    def __exit__(self, *exc: object) -> None:
        for bar in self._bars:
            bar.close()
        self._logs_above.__exit__(*exc)


def configure_logging(verbose: bool) -> None:
    """Log lines on stderr (INFO for agebatch, DEBUG with --verbose); no telemetry, no chatter.

    Without --verbose `distributed` logs from WARNING up: its INFO lines are a cluster's
    start-up and close, and one of them comes with a traceback when a connection closes under
    a write at the close (seen at the end of a run that went well).
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    quiet.set_verbose(verbose)  # native chatter (agebatch.quiet), here and in child processes
    # Prefect's server sends usage telemetry unless told not to; the job talks to its API only.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    if not verbose:  # Dask's lines (here and in the workers it starts) from WARNING up
        os.environ.setdefault(DASK_LOG_ENV, "warning")
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
