"""The nightly deployment of `agebatch-nightly`: cron schedule, time zone and run config, in code.

Serve it (a long-running process that starts scheduled and requested runs) with:

    python -m agebatch.flows.deploy --photos P --transactions T --catalog C --out O

or register it with a work pool, whose workers (`prefect worker start --pool POOL`) run it:

    python -m agebatch.flows.deploy --work-pool POOL --photos P --transactions T ...

then run any day with
`prefect deployment run 'agebatch-nightly/nightly' --param day=YYYY-MM-DD --watch`.
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
    parser.add_argument(
        "--work-pool",
        default=os.environ.get("AGEBATCH_WORK_POOL"),
        metavar="POOL",
        help="register the deployment with this Prefect work pool and exit, instead of serving "
        "it; a worker of the pool (`prefect worker start --pool POOL`, in an environment where "
        "agebatch is installed) runs its flow runs",
    )
    parser.add_argument(
        "--job-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="with --work-pool: an environment variable of every flow run the pool's workers "
        "start, e.g. CUDA_VISIBLE_DEVICES=0 to pin runs to one GPU (repeatable)",
    )
    add_config_options(parser, RunConfig, required=False)
    return parser


def job_variables(pairs: Sequence[str]) -> dict[str, Any]:
    """The work pool job variables of --job-env NAME=VALUE pairs (a process pool's `env`)."""
    env = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name:
            raise SystemExit(f"agebatch deploy: error: --job-env {pair!r} is not NAME=VALUE.")
        env[name] = value
    return {"env": env} if env else {}


def deployment_parameters(
    args: argparse.Namespace, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The flow parameters the deployment fixes: the settings given (flags, then AGEBATCH_*),
    checked now so a bad setting fails here, not at 02:30."""
    config = run_config(args, env)
    return {"config": config.model_dump(mode="json", exclude_unset=True)}


def main(argv: Sequence[str] | None = None) -> None:
    """Register the deployment with the Prefect API; serve its runs until stopped, or leave
    them to the workers of --work-pool."""
    args = build_parser().parse_args(argv)
    # No usage data leaves; agebatch's log lines reach the run log by the flow itself.
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
    deployment = {
        "name": DEPLOYMENT,
        "schedules": [Cron(args.cron, timezone=timezone)],
        "parameters": parameters,
        "description": "Yesterday's checkout photos -> ages -> age-group analytics (Parquet).",
        "tags": ["agebatch"],
        # The flow is imported from the installed package: no code storage, no image.
        "entrypoint_type": EntrypointType.MODULE_PATH,
    }
    if args.work_pool is None:
        nightly.serve(**deployment)
        return
    nightly.deploy(
        **deployment,
        work_pool_name=args.work_pool,
        job_variables=job_variables(args.job_env),
        print_next_steps=False,
        ignore_warnings=True,
    )
    print(
        f"Deployment 'agebatch-nightly/{DEPLOYMENT}' registered with work pool "
        f"{args.work_pool!r}. Its runs start when a worker of the pool is running:\n"
        f"  prefect worker start --pool {args.work_pool}\n"
        f"Run a day: prefect deployment run 'agebatch-nightly/{DEPLOYMENT}' "
        "--param day=YYYY-MM-DD --watch"
    )


if __name__ == "__main__":
    main()
