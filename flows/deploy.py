"""The nightly deployment of `agebatch-nightly`: cron schedule, timezone and paths, in code.

Serve it (a long-running process that starts scheduled and requested runs) with:

    python -m agebatch.flows.deploy --photos P --transactions T --catalog C --out O

then run any day with `prefect deployment run 'agebatch-nightly/nightly' --param day=YYYY-MM-DD`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

DEPLOYMENT = "nightly"
DEFAULT_CRON = "30 2 * * *"  # 02:30 every night, once the tills' data has landed


def build_parser() -> argparse.ArgumentParser:
    """Options of the deployment; each defaults to an AGEBATCH_* environment variable."""
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="python -m agebatch.flows.deploy",
        description="Serve the agebatch-nightly deployment: a nightly cron schedule plus runs "
        "requested with `prefect deployment run 'agebatch-nightly/nightly'`.",
    )
    parser.add_argument(
        "--photos", default=env("AGEBATCH_PHOTOS"), required=not env("AGEBATCH_PHOTOS")
    )
    parser.add_argument(
        "--transactions",
        default=env("AGEBATCH_TRANSACTIONS"),
        required=not env("AGEBATCH_TRANSACTIONS"),
    )
    parser.add_argument(
        "--catalog", default=env("AGEBATCH_CATALOG"), required=not env("AGEBATCH_CATALOG")
    )
    parser.add_argument("--out", default=env("AGEBATCH_OUT"), required=not env("AGEBATCH_OUT"))
    parser.add_argument("--model", default=env("AGEBATCH_MODEL"), help="default: the bundled model")
    parser.add_argument(
        "--cron", default=env("AGEBATCH_CRON", DEFAULT_CRON), help="default: %(default)s"
    )
    parser.add_argument(
        "--timezone", default=env("AGEBATCH_TIMEZONE", "Europe/London"), help="default: %(default)s"
    )
    parser.add_argument(
        "--photo-kind",
        default=env("AGEBATCH_PHOTO_KIND"),
        choices=("auto", "frames", "crops"),
        help="what the cameras save (default: the flow's, auto)",
    )
    parser.add_argument(
        "--face-regions",
        default=env("AGEBATCH_FACE_REGIONS"),
        help="per-camera shopper regions: CSV/Parquet store_id,register_id,x0,y0,x1,y1",
    )
    parser.add_argument(
        "--policy",
        default=env("AGEBATCH_POLICY"),
        help="per-store ID ages: CSV/Parquet store_id,legal_age,challenge_age",
    )
    return parser


def deployment_parameters(args: argparse.Namespace) -> dict[str, str | None]:
    """The flow parameters the deployment fixes; options left unset keep the flow's defaults."""
    optional = {
        "photo_kind": args.photo_kind,
        "face_regions": args.face_regions,
        "policy": args.policy,
    }
    return {
        "photos": args.photos,
        "transactions": args.transactions,
        "catalog": args.catalog,
        "out": args.out,
        "model": args.model,
        "timezone": args.timezone,
        **{name: value for name, value in optional.items() if value is not None},
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Register the deployment with the Prefect API and serve its runs until stopped."""
    args = build_parser().parse_args(argv)
    # Package logs (progress, counts) go to the Prefect run log; no usage data leaves.
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "agebatch")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron

    from agebatch.flows.nightly import nightly

    nightly.serve(
        name=DEPLOYMENT,
        schedules=[Cron(args.cron, timezone=args.timezone)],
        parameters=deployment_parameters(args),
        description="Yesterday's checkout photos -> ages -> age-group analytics (Parquet).",
        tags=["agebatch"],
        entrypoint_type=EntrypointType.MODULE_PATH,
    )


if __name__ == "__main__":
    main()
