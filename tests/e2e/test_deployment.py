"""The deployment route for real: a local Prefect server, the served deployment, a CLI run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from agebatch.sample import make_sample_day
from tests.conftest import DAY
from tests.pictures import SolidFaces

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _api(url: str, path: str, body: dict | None = None) -> object:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"{url}{path}", data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _wait(check, timeout: float, what: str, proc: subprocess.Popen) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what}: process exited with {proc.returncode}")
        try:
            result = check()
            if result:
                return result
        except OSError:
            pass
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def prefect_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A real Prefect server on a free loopback port, with its own home folder."""
    port = _free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "INFO",
    }
    with open(tmp_path / "server.log", "w") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "prefect",
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait(lambda: _api(env["PREFECT_API_URL"], "/health"), 120, "Prefect server", server)
        yield env
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_prefect_deployment_run_publishes_the_day(
    prefect_env: dict[str, str], tmp_path: Path, brightness_model_path: Path
) -> None:
    sample = make_sample_day(tmp_path / "data", DAY, receipts=60, writer=SolidFaces(), seed=3)
    out = tmp_path / "out"
    with open(tmp_path / "serve.log", "w") as serve_log:
        served = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agebatch.flows.deploy",
                "--photos",
                str(sample.photos),
                "--transactions",
                str(sample.transactions),
                "--catalog",
                str(sample.catalog),
                "--out",
                str(out),
                "--model",
                str(brightness_model_path),
            ],
            env=prefect_env,
            stdout=serve_log,
            stderr=subprocess.STDOUT,
        )
    api = prefect_env["PREFECT_API_URL"]
    try:
        deployment = _wait(
            lambda: _api(api, "/deployments/name/agebatch-nightly/nightly"),
            120,
            "deployment",
            served,
        )
        assert deployment["schedules"][0]["schedule"]["cron"] == "30 2 * * *"
        run = subprocess.run(
            [
                sys.executable,
                "-m",
                "prefect",
                "deployment",
                "run",
                "agebatch-nightly/nightly",
                "--param",
                f"day={DAY.isoformat()}",
                "--watch",
                "--watch-timeout",
                "240",
            ],
            env=prefect_env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert run.returncode == 0, run.stdout + run.stderr
        runs = _api(api, "/flow_runs/filter", {"deployments": {"id": {"any_": [deployment["id"]]}}})
        started = [r for r in runs if r["state_type"] != "SCHEDULED"]  # the cron adds some too
        assert [r["state_type"] for r in started] == ["COMPLETED"]
        assert started[0]["parameters"]["day"] == DAY.isoformat()
    finally:
        served.terminate()
        served.wait(timeout=30)
    for table in ("receipt_ages", "age_group_purchases", "runs"):
        assert (out / table / f"day={DAY.isoformat()}").is_dir()


def test_deployment_fixes_only_the_options_it_is_given() -> None:
    from agebatch.errors import InputError
    from agebatch.flows.deploy import build_parser, deployment_parameters

    env = {"AGEBATCH_FACE_REGIONS": "regions.csv", "AGEBATCH_WORKERS": "3"}
    paths = ["--photos", "p", "--transactions", "t", "--catalog", "c.parquet", "--out", "o"]
    args = build_parser().parse_args([*paths, "--photo-kind", "frames", "--workers", "5"])
    config = deployment_parameters(args, env)["config"]
    assert config == {
        "photos": "p",
        "transactions": "t",
        "catalog": "c.parquet",
        "out": "o",
        "photo_kind": "frames",
        "face_regions": "regions.csv",
        "workers": 5,  # the flag wins over the environment
    }  # unset settings keep the config's defaults when a run starts
    with pytest.raises(SystemExit):
        build_parser().parse_args([*paths, "--photo-kind", "faces"])
    with pytest.raises(InputError, match="Setting margin"):
        deployment_parameters(build_parser().parse_args([*paths, "--margin", "-1"]), {})
