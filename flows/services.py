"""Start, stop and inspect the local services of ``make up``: the Prefect server, the MLflow UI and the deployments.

    python flows/services.py up       # Prefect server :4200, MLflow UI :5000, `python flows/deploy.py`
    python flows/services.py status   # each service: running (healthy or not) or stopped; exit 3 unless all run
    python flows/services.py down     # SIGTERM to each service's process group, SIGKILL after --stop-timeout

Every service runs on 127.0.0.1 in its own session (it outlives ``up``), with its log in
``<PREFECT_HOME>/services/<name>.log`` and its pid in ``<name>.pid`` beside it (``PREFECT_HOME``: the environment's,
else ``<repo>/.prefect``, where ``prefect.toml`` also puts it). ``up`` waits until each is healthy (Prefect:
``/api/health``; MLflow: ``/health``; deployments: both readable through the API and polled by the new process)
and leaves alone a service that already runs; when one does not come up it prints the end of that service's log and
stops the services this call started. The MLflow UI shows ``$MLFLOW_TRACKING_URI`` when it is a sqlite store, else
``<repo>/mlruns/mlflow.db``; the deployments' runs log to the same store.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
#: The deployments ``flows/deploy.py`` serves (``<flow name>/<deployment name>``).
DEPLOYMENTS = ("train-grpo/train-grpo", "re-evaluate/re-evaluate")
#: Telemetry off in every service (values the environment already holds win).
OFFLINE_ENV = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "true",
               "MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1", "HF_HUB_OFFLINE": "1",
               "HF_HUB_DISABLE_TELEMETRY": "1", "TRANSFORMERS_OFFLINE": "1"}
#: Exit code of ``status`` when not every service runs (LSB: "program is not running").
NOT_RUNNING = 3


class ServiceError(RuntimeError):
    """A service could not start or did not become healthy; the message holds the end of its log."""


@dataclass
class Layout:
    """Where the services run and keep their files."""

    repo: Path = REPO
    host: str = "127.0.0.1"
    prefect_port: int = 4200
    mlflow_port: int = 5000
    mlflow_workers: int = 1
    params: str = "params.yaml"
    #: Prefect's home (the services' files go to its ``services/``); default ``$PREFECT_HOME`` or ``<repo>/.prefect``.
    home: Path | None = None
    #: The MLflow store; default ``$MLFLOW_TRACKING_URI`` when it is sqlite, else ``<repo>/mlruns/mlflow.db``.
    mlflow_uri: str | None = None

    def __post_init__(self) -> None:
        self.repo = Path(self.repo).resolve()
        if self.home is None:
            env_home = os.environ.get("PREFECT_HOME")
            self.home = Path(env_home).expanduser() if env_home else self.repo / ".prefect"
        self.home = (self.repo / self.home).resolve()  # a relative home is the repository's (as in prefect.toml)
        if self.mlflow_uri is None:
            env_uri = os.environ.get("MLFLOW_TRACKING_URI", "")
            self.mlflow_uri = env_uri if env_uri.startswith("sqlite:///") else \
                f"sqlite:///{self.repo / 'mlruns' / 'mlflow.db'}"

    @property
    def state(self) -> Path:
        return self.home / "services"

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.prefect_port}/api"

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.host}:{self.mlflow_port}"

    def env(self) -> dict[str, str]:
        """The services' environment: this one, telemetry off, Prefect's home and API, the MLflow store."""
        env = {**OFFLINE_ENV, **os.environ}
        env.setdefault("PREFECT_RUNNER_POLL_FREQUENCY", "2")
        env.update(PREFECT_HOME=str(self.home), PREFECT_API_URL=self.api_url, MLFLOW_TRACKING_URI=self.mlflow_uri)
        return env


@dataclass
class Service:
    name: str
    cmd: list[str]
    url: str
    port: int | None = None
    env: dict[str, str] = field(default_factory=dict)

    def healthy(self, http: httpx.Client, layout: Layout, since: float | None = None) -> bool:
        """Whether the service answers (for ``deploy``: both deployments exist and, with ``since``, were polled
        by a runner after that time, so a deployment left in the database by an earlier process does not count)."""
        try:
            if self.name == "prefect":
                return http.get(f"{layout.api_url}/health").status_code == 200
            if self.name == "mlflow":
                return http.get(f"{layout.mlflow_url}/health").status_code == 200
            for name in DEPLOYMENTS:
                response = http.get(f"{layout.api_url}/deployments/name/{name}")
                if response.status_code != 200:
                    return False
                polled = response.json().get("last_polled")
                if since is not None and (not polled or _timestamp(polled) < since):
                    return False
            return True
        except (httpx.TransportError, ValueError):
            return False


def _timestamp(iso: str) -> float:
    stamp = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return (stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)).timestamp()


def services(layout: Layout) -> list[Service]:
    """The three services, in start order (``down`` stops them in reverse)."""
    python = sys.executable
    bin_dir = Path(python).parent
    artifacts = Path(layout.mlflow_uri[len("sqlite:///"):]).parent / "artifacts" \
        if layout.mlflow_uri.startswith("sqlite:///") else layout.repo / "mlruns" / "artifacts"
    env = layout.env()
    deploy_env = {**env, "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
                  # the stages of this repository run its own code, also when it is not the installed checkout
                  "PYTHONPATH": os.pathsep.join([str(layout.repo), *filter(None, [env.get("PYTHONPATH")])])}
    return [
        Service("prefect", [python, "-m", "prefect", "server", "start", "--host", layout.host,
                            "--port", str(layout.prefect_port), "--analytics-off"],
                url=layout.api_url.removesuffix("/api"), port=layout.prefect_port, env=env),
        # job execution (GenAI judges: a job runner and seven huey consumers) is not what the UI is for
        Service("mlflow", [python, "-m", "mlflow", "server", "--backend-store-uri", layout.mlflow_uri,
                           "--default-artifact-root", artifacts.as_uri(), "--host", layout.host,
                           "--port", str(layout.mlflow_port), "--workers", str(layout.mlflow_workers)],
                url=layout.mlflow_url, port=layout.mlflow_port,
                env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **env}),
        Service("deploy", [python, str(layout.repo / "flows" / "deploy.py"), "--params", layout.params],
                url=f"{layout.api_url.removesuffix('/api')}/deployments", env=deploy_env),
    ]


# ------------------------------------------------------------------------------------------------------ processes


def _stat(pid: int) -> tuple[str, int, int, int] | None:
    """(state, pgrp, session, start time) of a process from /proc; None when it does not exist."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = text[text.rindex(")") + 2:].split()
    return fields[0], int(fields[2]), int(fields[3]), int(fields[19])


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    if Path("/proc").is_dir():
        stat = _stat(pid)
        return stat is not None and stat[0] not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _members(leader: int) -> list[tuple[int, int]]:
    """(pid, pgrp) of the live processes in the session or process group ``leader`` started."""
    if not Path("/proc").is_dir():
        try:
            os.killpg(leader, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [(leader, leader)]
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat and stat[0] not in ("Z", "X") and leader in (stat[1], stat[2]):
                found.append((int(entry.name), stat[1]))
    return found


def _signal(members: list[tuple[int, int]], sig: int) -> None:
    for pgrp in {pgrp for _, pgrp in members}:
        try:
            os.killpg(pgrp, sig)
        except (ProcessLookupError, PermissionError):
            pass
    for pid, _ in members:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _wait_gone(leader: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while _members(leader):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)  # polling for the processes to exit
    return True


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind: TIME_WAIT is no conflict
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


# ----------------------------------------------------------------------------------------------------- pid files


def _files(layout: Layout, name: str) -> tuple[Path, Path, Path]:
    return layout.state / f"{name}.pid", layout.state / f"{name}.json", layout.state / f"{name}.log"


def running_pid(layout: Layout, name: str) -> int | None:
    """The pid of ``name`` when its pid file names a live process it started (the start time guards pid reuse)."""
    pid_file, meta_file, _ = _files(layout, name)
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    if not _alive(pid):
        return None
    try:
        started = json.loads(meta_file.read_text()).get("start_ticks")
    except (OSError, ValueError):
        started = None
    stat = _stat(pid)
    if started is not None and stat is not None and stat[3] != started:
        return None  # the pid was reused by another process
    return pid


def _meta(layout: Layout, name: str) -> dict:
    try:
        return json.loads(_files(layout, name)[1].read_text())
    except (OSError, ValueError):
        return {}


def _remove_files(layout: Layout, name: str) -> None:
    for path in _files(layout, name)[:2]:
        path.unlink(missing_ok=True)


def log_tail(path: Path, offset: int = 0, chars: int = 4000) -> str:
    """The end of a log from byte ``offset`` on (where the service's latest start begins)."""
    try:
        with open(path, "rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


# --------------------------------------------------------------------------------------------------------- up


def _start(layout: Layout, service: Service) -> tuple[int, float]:
    pid_file, meta_file, log_file = _files(layout, service.name)
    layout.state.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with open(log_file, "ab") as log:
        offset = log.tell()
        log.write(f"\n=== {datetime.now().isoformat(timespec='seconds')} {' '.join(service.cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(service.cmd, cwd=layout.repo, env=service.env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    stat = _stat(proc.pid)
    pid_file.write_text(f"{proc.pid}\n")
    meta_file.write_text(json.dumps({"pid": proc.pid, "start_ticks": stat[3] if stat else None, "port": service.port,
                                     "url": service.url, "cmd": service.cmd, "started": started,
                                     "log_offset": offset}, indent=1) + "\n")
    return proc.pid, started


def _wait_healthy(layout: Layout, service: Service, pid: int, since: float | None, timeout_s: float,
                  http: httpx.Client) -> None:
    log_file = _files(layout, service.name)[2]
    offset = _meta(layout, service.name).get("log_offset", 0)
    deadline = time.monotonic() + timeout_s
    delay = 0.1
    while not service.healthy(http, layout, since):
        if not _alive(pid):
            raise ServiceError(f"{service.name} exited before it was healthy; the end of {log_file}:\n"
                               f"{log_tail(log_file, offset)}")
        if time.monotonic() > deadline:
            raise ServiceError(f"{service.name} not healthy after {timeout_s:g} s; the end of {log_file}:\n"
                               f"{log_tail(log_file, offset)}")
        time.sleep(delay)  # polling the health endpoint, backing off
        delay = min(delay * 1.5, 1.0)


def up(layout: Layout, timeout_s: float = 180.0, out=print) -> dict[str, int]:
    """Start the services that do not run and wait until all are healthy; returns their pids."""
    todo = services(layout)
    pids: dict[str, int] = {}
    for service in todo:
        pid = running_pid(layout, service.name)
        if pid is None and service.port is not None and _port_in_use(layout.host, service.port):
            raise ServiceError(f"cannot start {service.name}: port {service.port} on {layout.host} is in use by "
                               f"another process (choose another with --{service.name}-port, or stop that process)")
        if pid is not None:
            port = _meta(layout, service.name).get("port")
            if port is not None and port != service.port:
                raise ServiceError(f"{service.name} already runs on port {port} (pid {pid}), not {service.port}: "
                                   "stop the services first (`python flows/services.py down`)")
            pids[service.name] = pid
    started: list[Service] = []
    with httpx.Client(timeout=5.0) as http:
        try:
            # the Prefect server and the MLflow UI start together; the deployments need the Prefect server
            for batch in (todo[:2], todo[2:]):
                begun: dict[str, tuple[int, float, float]] = {}
                for service in batch:
                    if service.name not in pids:
                        pid, since = _start(layout, service)
                        started.append(service)
                        pids[service.name] = pid
                        begun[service.name] = (pid, since, time.monotonic())
                for service in batch:
                    if service.name not in begun:
                        _wait_healthy(layout, service, pids[service.name], None, timeout_s, http)
                        out(f"{service.name}: already running (pid {pids[service.name]}) {service.url}")
                        continue
                    pid, since, begin = begun[service.name]
                    # the deployments must be polled by this process (not left in the database by an earlier one)
                    _wait_healthy(layout, service, pid, since - 1.0 if service.name == "deploy" else None,
                                  timeout_s, http)
                    out(f"{service.name}: started (pid {pid}, healthy in {time.monotonic() - begin:.1f} s) "
                        f"{service.url}  log: {_files(layout, service.name)[2]}")
        except BaseException:
            for service in reversed(started):
                _stop(layout, service.name, 10.0)
            raise
    return pids


# ------------------------------------------------------------------------------------------------------ down


def _stop(layout: Layout, name: str, timeout_s: float) -> int | None:
    """Stop ``name`` (its whole session, also what is left of it when its first process died); returns the pid it
    had, None when nothing of it was running."""
    try:
        pid = int(_files(layout, name)[0].read_text().split()[0])
    except (OSError, ValueError, IndexError):
        pid = None
    # a live process under a reused pid is not ours; a dead leader's session id is not reused while members live
    members = _members(pid) if pid is not None and (running_pid(layout, name) or not _alive(pid)) else []
    if members:
        _signal(members, signal.SIGTERM)
        if not _wait_gone(pid, timeout_s):
            _signal(_members(pid), signal.SIGKILL)
            _wait_gone(pid, 5.0)
    _remove_files(layout, name)
    return pid if members else None


def down(layout: Layout, timeout_s: float = 10.0, out=print) -> dict[str, int]:
    """Stop the services that run (deployments first); returns the pids stopped."""
    stopped = {}
    for service in reversed(services(layout)):
        pid = _stop(layout, service.name, timeout_s)
        if pid is not None:
            stopped[service.name] = pid
            out(f"{service.name}: stopped (pid {pid})")
    if not stopped:
        out("nothing was running")
    return stopped


def status(layout: Layout, out=print) -> bool:
    """Print each service's state; True when all run and are healthy."""
    ok = True
    # the ports the running services were started with
    saved = Layout(repo=layout.repo, home=layout.home, host=layout.host, mlflow_uri=layout.mlflow_uri,
                   prefect_port=_meta(layout, "prefect").get("port") or layout.prefect_port,
                   mlflow_port=_meta(layout, "mlflow").get("port") or layout.mlflow_port)
    with httpx.Client(timeout=2.0) as http:
        for service in services(layout):
            pid = running_pid(layout, service.name)
            if pid is None:
                ok = False
                try:
                    dead = int(_files(layout, service.name)[0].read_text().split()[0])
                except (OSError, ValueError, IndexError):
                    dead = None
                left = _members(dead) if dead is not None and not _alive(dead) else []
                out(f"{service.name}: stopped" + (f" (its process {dead} died, leaving {len(left)} of its processes "
                                                  "running: `down` stops them)" if left else ""))
                continue
            meta = _meta(layout, service.name)
            healthy = service.healthy(http, saved)
            ok = ok and healthy
            out(f"{service.name}: running (pid {pid}, {'healthy' if healthy else 'NOT healthy'}) "
                f"{meta.get('url', service.url)}  log: {_files(layout, service.name)[2]}")
    return ok


# ------------------------------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("command", choices=("up", "down", "status"))
    ap.add_argument("--repo", type=Path, default=REPO, help="repository the deployments run in (default: this one)")
    ap.add_argument("--prefect-port", type=int, default=4200)
    ap.add_argument("--mlflow-port", type=int, default=5000)
    ap.add_argument("--mlflow-workers", type=int, default=1, help="MLflow server worker processes")
    ap.add_argument("--params", default="params.yaml", help="params file of the deployments, relative to --repo")
    ap.add_argument("--timeout", type=float, default=180.0, help="seconds each service may take to become healthy")
    ap.add_argument("--stop-timeout", type=float, default=10.0, help="seconds between SIGTERM and SIGKILL")
    args = ap.parse_args(argv)
    layout = Layout(repo=args.repo, prefect_port=args.prefect_port, mlflow_port=args.mlflow_port,
                    mlflow_workers=args.mlflow_workers, params=args.params)
    try:
        if args.command == "up":
            up(layout, args.timeout)
            print(f"Prefect UI {layout.api_url.removesuffix('/api')}  MLflow UI {layout.mlflow_url}  "
                  f"(`python flows/services.py down` stops them)")
        elif args.command == "down":
            down(layout, args.stop_timeout)
        else:
            return 0 if status(layout) else NOT_RUNNING
    except ServiceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
