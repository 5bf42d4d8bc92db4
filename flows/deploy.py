"""The nightly deployment of `agebatch-nightly`: cron schedule, time zone and run config, in code.

Serve it (a long-running process that starts scheduled and requested runs) with:

    python -m agebatch.flows.deploy --photos P --transactions T --catalog C --out O

then run any day with `prefect deployment run 'agebatch-nightly/nightly' --param day=YYYY-MM-DD`.
Every option of `agebatch run` is accepted and fixed for every run of the deployment; each can
also come from its AGEBATCH_<SETTING> environment variable (flags win). Settings left unset keep
the config's defaults, evaluated when a run starts.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from typing import Any

from agebatch.cli.options import add_config_options, run_config
from agebatch.config import RunConfig

DEPLOYMENT = "nightly"
DEFAULT_CRON = "30 2 * * *"  # 02:30 every night, once the tills' data has landed


def build_parser() -> argparse.ArgumentParser:
    """Options of the deployment: the cron schedule and every setting of the run config."""
    parser = argparse.ArgumentParser(
        prog="python -m agebatch.flows.deploy",
        description="Serve the agebatch-nightly deployment: a nightly cron schedule plus runs "
        "requested with `prefect deployment run 'agebatch-nightly/nightly'`. Settings can also "
        "come from AGEBATCH_<SETTING> environment variables (e.g. AGEBATCH_OUT).",
    )
    parser.add_argument(
        "--cron",
        default=os.environ.get("AGEBATCH_CRON", DEFAULT_CRON),
        help="when the nightly run starts, in the config's time zone (default: %(default)s)",
    )
    add_config_options(parser, RunConfig, required=False)
    return parser


def deployment_parameters(
    args: argparse.Namespace, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The flow parameters the deployment fixes: the settings given (flags, then AGEBATCH_*),
    checked now so a bad setting fails here, not at 02:30."""
    config = run_config(args, env)
    return {"config": config.model_dump(mode="json", exclude_unset=True)}


def main(argv: Sequence[str] | None = None) -> None:
    """Register the deployment with the Prefect API and serve its runs until stopped."""
    args = build_parser().parse_args(argv)
    # Package logs (progress, counts) go to the Prefect run log; no usage data leaves.
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "agebatch")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron

    from agebatch.errors import InputError
    from agebatch.flows.nightly import nightly

    try:
        parameters = deployment_parameters(args)
    except InputError as error:
        raise SystemExit(f"agebatch deploy: error: {error}") from None
    timezone = RunConfig.model_validate(parameters["config"]).timezone
    nightly.serve(
        name=DEPLOYMENT,
        schedules=[Cron(args.cron, timezone=timezone)],
        parameters=parameters,
        description="Yesterday's checkout photos -> ages -> age-group analytics (Parquet).",
        tags=["agebatch"],
        entrypoint_type=EntrypointType.MODULE_PATH,
    )


if __name__ == "__main__":
    main()
