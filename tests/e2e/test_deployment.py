"""The deployment routes for real: a local Prefect server; the served deployment, and the
deployment registered with a process work pool and run by a `prefect worker`; CLI runs."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from agebatch.quiet import VERBOSE_ENV
from agebatch.sample import make_sample_day
from tests.conftest import DAY
from tests.pictures import SolidFaces

pytestmark = pytest.mark.slow

# Pieces of the start-up lines TensorFlow, CUDA and LiteRT print from C++ on a CPU machine.
CHATTER = ("absl::", "oneDNN", "cuda drivers", "cuInit", "cpu_feature_guard", "XNNPACK")


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


def _run_log(url: str, flow_run_id: str, expect: str, timeout: float = 30) -> list[str]:
    """The messages of a flow run's log on the server, once one starts with `expect` (logs
    reach the API in batches, a little after the run ends)."""
    body = {"logs": {"flow_run_id": {"any_": [flow_run_id]}}}
    deadline = time.monotonic() + timeout
    while True:
        messages = [log["message"] for log in _api(url, "/logs/filter", body)]
        if any(m.startswith(expect) for m in messages) or time.monotonic() > deadline:
            return messages
        time.sleep(1)


def _deployment_run(env: dict[str, str]) -> subprocess.CompletedProcess:
    """`prefect deployment run … --watch` for DAY, as the deployment docs say to run it."""
    return subprocess.run(
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
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _flow_run(url: str, run: subprocess.CompletedProcess) -> dict:
    """The flow run that `prefect deployment run` created (it prints `└── UUID: …`)."""
    flow_run_id = re.search(r"UUID: ([0-9a-f-]{36})", run.stdout)
    assert flow_run_id, run.stdout
    return _api(url, f"/flow_runs/{flow_run_id[1]}")


@pytest.fixture(scope="module")
def prefect_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """A real Prefect server on a free loopback port, with its own home folder, shared by the
    tests of this module (each registers the deployment anew and follows its own run)."""
    tmp_path = tmp_path_factory.mktemp("prefect")
    port = _free_port()
    # As on a user's machine: no TensorFlow log level or verbosity set by the tests' process.
    inherited = {
        k: v for k, v in os.environ.items() if k not in {"TF_CPP_MIN_LOG_LEVEL", VERBOSE_ENV}
    }
    env = {
        **inherited,
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
        run = _deployment_run(prefect_env)
        assert run.returncode == 0, run.stdout + run.stderr
        flow_run = _flow_run(api, run)
        assert flow_run["state_type"] == "COMPLETED"
        assert flow_run["deployment_id"] == deployment["id"]
        assert flow_run["parameters"]["day"] == DAY.isoformat()
        messages = _run_log(api, flow_run["id"], "Joined 60 receipts")
        assert [m for m in messages if m.startswith("Joined 60 receipts")], messages
    finally:
        served.terminate()
        served.wait(timeout=30)
    for table in ("receipt_ages", "age_group_purchases", "runs"):
        assert (out / table / f"day={DAY.isoformat()}").is_dir()
    served_output = (tmp_path / "serve.log").read_text()
    assert "Joined 60 receipts" in served_output  # the run's own output, shown by serve
    assert [piece for piece in CHATTER if piece in served_output] == [], served_output


def test_work_pool_deployment_runs_on_a_worker(
    prefect_env: dict[str, str], tmp_path: Path, brightness_model_path: Path
) -> None:
    """The production route of docs/deployment.md: a process work pool, the deployment
    registered with it from code, a `prefect worker`, a run asked for with --watch."""
    sample = make_sample_day(tmp_path / "data", DAY, receipts=60, writer=SolidFaces(), seed=3)
    out = tmp_path / "out"
    api = prefect_env["PREFECT_API_URL"]
    prefect = [sys.executable, "-m", "prefect"]
    pool = subprocess.run(
        [*prefect, "work-pool", "create", "agebatch", "--type", "process"],
        env=prefect_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert pool.returncode == 0, pool.stdout + pool.stderr
    paths = {
        "--photos": sample.photos,
        "--transactions": sample.transactions,
        "--catalog": sample.catalog,
        "--out": out,
        "--model": brightness_model_path,
    }
    registered = subprocess.run(
        [sys.executable, "-m", "agebatch.flows.deploy", "--work-pool", "agebatch"]
        + ["--job-env", "CUDA_VISIBLE_DEVICES=0"]  # docs/dask.md: pin the pool's runs to a GPU
        + [str(part) for option in paths.items() for part in option],
        env=prefect_env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert registered.returncode == 0, registered.stdout + registered.stderr
    deployment = _api(api, "/deployments/name/agebatch-nightly/nightly")
    assert deployment["work_pool_name"] == "agebatch"
    assert deployment["job_variables"] == {"env": {"CUDA_VISIBLE_DEVICES": "0"}}
    assert deployment["entrypoint"] == "agebatch.flows.nightly.nightly"
    schedule = deployment["schedules"][0]["schedule"]
    assert (schedule["cron"], schedule["timezone"]) == ("30 2 * * *", "Europe/London")
    assert deployment["parameters"]["config"] == {
        option.removeprefix("--"): str(path) for option, path in paths.items()
    }
    with open(tmp_path / "worker.log", "w") as worker_log:
        worker = subprocess.Popen(
            [*prefect, "worker", "start", "--pool", "agebatch"],
            env=prefect_env,
            stdout=worker_log,
            stderr=subprocess.STDOUT,
        )
    try:
        run = _deployment_run(prefect_env)
        assert run.returncode == 0, run.stdout + run.stderr
        flow_run = _flow_run(api, run)
        assert flow_run["state_type"] == "COMPLETED"
        assert flow_run["work_queue_name"] == "default"  # taken from the pool by the worker
        messages = _run_log(api, flow_run["id"], f"Published {DAY.isoformat()} to {out}")
        assert [m for m in messages if m.startswith("Joined 60 receipts")], messages
        assert [m for m in messages if m.startswith(f"Published {DAY.isoformat()} to {out}")]
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            # Seen twice in full runs: the worker, stopping, could not reach the API and backed
            # off for 40 s. What this test checks (the run the worker took) is asserted above.
            worker.kill()
            worker.wait(timeout=30)
    assert (out / "receipt_ages" / f"day={DAY.isoformat()}").is_dir()
    worker_output = (tmp_path / "worker.log").read_text()
    assert [piece for piece in CHATTER if piece in worker_output] == [], worker_output


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


def test_job_env_pairs_become_the_pools_env_job_variable() -> None:
    from agebatch.flows.deploy import job_variables

    assert job_variables([]) == {}
    assert job_variables(["CUDA_VISIBLE_DEVICES=1", "A=b=c"]) == {
        "env": {"CUDA_VISIBLE_DEVICES": "1", "A": "b=c"}
    }
    with pytest.raises(SystemExit, match="NAME=VALUE"):
        job_variables(["CUDA_VISIBLE_DEVICES"])
