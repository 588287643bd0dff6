"""`flows/services.py` (what `make up` / `make down` run): the Prefect server, the MLflow UI and the served
deployments come up on free ports, the deployments are in the API with their schedule, a `train-grpo` deployment run
completes, and `down` leaves no process behind. The fast tests: `status`/`down` with nothing running, a taken port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from conftest import pipeline_env

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SERVICES = ("prefect", "mlflow", "deploy")
STAGES = ("curate", "base-model", "sft", "grpo", "evaluate")

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def env_for(repo: Path, home: Path, prefect_port: int | None = None) -> dict[str, str]:
    """The pipeline copy's environment (conftest.pipeline_env), Prefect's home in ``home``, telemetry off."""
    env = {k: v for k, v in pipeline_env(repo).items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", DO_NOT_TRACK="true",
               MLFLOW_DISABLE_TELEMETRY="true", PREFECT_RUNNER_POLL_FREQUENCY="2")
    if prefect_port is not None:
        env["PREFECT_API_URL"] = f"http://127.0.0.1:{prefect_port}/api"
    return env


def services(command: str, *args: str, repo: Path, env: dict[str, str], timeout: float = 300):
    return subprocess.run([sys.executable, str(REPO / "flows" / "services.py"), command, "--repo", str(repo), *args],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=timeout)


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def alive(known) -> set[int]:
    """Live (not zombie) processes that are in ``known`` or whose session or process group leader is."""
    known = {str(pid) for pid in known}
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat and stat[0] not in ("Z", "X") and known & {entry.name, stat[2], stat[3]}:
                found.add(int(entry.name))
    return found


def pids(home: Path) -> dict[str, int]:
    state = home / "services"
    return {name: int((state / f"{name}.pid").read_text()) for name in SERVICES if (state / f"{name}.pid").is_file()}


# ------------------------------------------------------------------------------------------------- fast tests


def test_status_and_down_with_nothing_running(tmp_path):
    home = tmp_path / "prefect"
    env = env_for(tmp_path, home)
    status = services("status", repo=tmp_path, env=env, timeout=60)
    assert status.returncode == 3, status.stdout + status.stderr
    assert status.stdout.splitlines() == ["prefect: stopped", "mlflow: stopped", "deploy: stopped"]

    # a pid file left by a service that died is stale: the service counts as stopped and `down` removes the file
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (home / "services").mkdir(parents=True)
    (home / "services" / "prefect.pid").write_text(f"{dead.pid}\n")
    status = services("status", repo=tmp_path, env=env, timeout=60)
    assert status.returncode == 3 and "prefect: stopped" in status.stdout

    down = services("down", repo=tmp_path, env=env, timeout=60)
    assert down.returncode == 0, down.stdout + down.stderr
    assert down.stdout.strip() == "nothing was running"
    assert not (home / "services" / "prefect.pid").exists()


@pytest.mark.parametrize("taken", ["prefect", "mlflow"])
def test_up_refuses_a_port_in_use_and_starts_nothing(tmp_path, taken):
    home = tmp_path / "prefect"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        ports = {"prefect": free_port(), "mlflow": free_port(), taken: port}
        up = services("up", "--prefect-port", str(ports["prefect"]), "--mlflow-port", str(ports["mlflow"]),
                      repo=tmp_path, env=env_for(tmp_path, home), timeout=60)
    assert up.returncode == 1
    assert f"cannot start {taken}: port {port} on 127.0.0.1 is in use" in up.stderr
    assert f"--{taken}-port" in up.stderr
    assert pids(home) == {}


# ------------------------------------------------------------------------------------------------- end to end


@pytest.fixture
def stack(pipeline_repo, tmp_path):
    """Arguments and environment for `services.py` on free ports, Prefect's home in tmp_path; `down` always runs
    afterwards, and any process a service left is killed (and the test errors)."""
    home = tmp_path / "prefect"
    ports = {"prefect": free_port(), "mlflow": free_port()}
    env = env_for(pipeline_repo, home, ports["prefect"])
    args = ("--prefect-port", str(ports["prefect"]), "--mlflow-port", str(ports["mlflow"]))
    seen: set[int] = set()
    yield {"repo": pipeline_repo, "home": home, "ports": ports, "env": env, "args": args, "seen": seen}
    seen |= set(pids(home).values())
    services("down", *args, repo=pipeline_repo, env=env, timeout=120)
    left = alive(seen)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"service processes left after `down`: {left}"


def _log(home: Path, name: str) -> str:
    path = home / "services" / f"{name}.log"
    return path.read_text(errors="replace")[-5000:] if path.is_file() else "(no log)"


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_up_serves_the_deployments_and_train_grpo_completes(stack):
    repo, home, env, args = stack["repo"], stack["home"], stack["env"], stack["args"]
    api = env["PREFECT_API_URL"]
    mlflow_url = f"http://127.0.0.1:{stack['ports']['mlflow']}"

    start = time.perf_counter()
    up = services("up", *args, repo=repo, env=env)
    up_s = time.perf_counter() - start
    assert up.returncode == 0, f"{up.stdout}{up.stderr}"
    started = pids(home)
    stack["seen"] |= set(started.values()) | alive(started.values())
    assert set(started) == set(SERVICES)
    assert all(f"{name}: started" in up.stdout for name in SERVICES), up.stdout

    with httpx.Client(timeout=10) as http:
        assert http.get(f"{api}/health").status_code == 200
        assert http.get(f"{mlflow_url}/health").status_code == 200
        reevaluate = http.get(f"{api}/deployments/name/re-evaluate/re-evaluate")
        assert reevaluate.status_code == 200, reevaluate.text
        reevaluate = reevaluate.json()
        assert [s["schedule"].get("cron") for s in reevaluate["schedules"]] == ["0 3 * * 1"]
        assert all(s["active"] for s in reevaluate["schedules"]) and not reevaluate["paused"]
        assert reevaluate["parameters"] == {"params": "params.yaml", "repo": str(repo)}
        train = http.get(f"{api}/deployments/name/train-grpo/train-grpo")
        assert train.status_code == 200, train.text
        assert train.json()["parameters"] == {"params": "params.yaml", "repo": str(repo)}
        assert train.json()["schedules"] == []

    # idempotent: a second `up` leaves the running services alone
    again = services("up", *args, repo=repo, env=env, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert all(f"{name}: already running (pid {started[name]})" in again.stdout for name in SERVICES), again.stdout
    assert pids(home) == started
    status = services("status", *args, repo=repo, env=env, timeout=60)
    assert status.returncode == 0 and status.stdout.count("healthy)") == 3, status.stdout

    start = time.perf_counter()
    run = subprocess.run([str(BIN / "prefect"), "deployment", "run", "train-grpo/train-grpo", "--watch"], cwd=repo,
                         env=env, capture_output=True, text=True, timeout=1200)
    run_s = time.perf_counter() - start
    assert run.returncode == 0, f"{run.stdout}{run.stderr}\n--- deploy log:\n{_log(home, 'deploy')}"
    assert "Completed" in run.stdout
    deploy_log = (home / "services" / "deploy.log").read_text(errors="replace")
    for stage in STAGES:  # the copy is up to date (when this runs before test_pipeline's changes): checked only
        assert f"Stage '{stage}' didn't change, skipping" in deploy_log or f"Running stage '{stage}'" in deploy_log, \
            deploy_log[-5000:]
    stack["seen"] |= alive(started.values())

    start = time.perf_counter()
    down = services("down", *args, repo=repo, env=env, timeout=120)
    down_s = time.perf_counter() - start
    assert down.returncode == 0, down.stdout + down.stderr
    assert all(f"{name}: stopped (pid {started[name]})" in down.stdout for name in SERVICES), down.stdout
    assert pids(home) == {}
    assert not alive(stack["seen"]), "service processes left after `down`"
    print(f"up {up_s:.1f} s, train-grpo deployment run {run_s:.1f} s, down {down_s:.1f} s")
