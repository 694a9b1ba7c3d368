"""Connecting to Ray: a quiet local instance, or an existing cluster.

Ray prints a lot by default (banner, per-trial tables, worker output) and
2.60 exposes its dashboard; a sweep tool owns the terminal, so raysweep starts
Ray quietly with the dashboard bound to localhost and its own progress display.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

from raysweep.errors import ClusterError

#: Environment raysweep sets before Ray Tune reads it (only where the user has not).
_RAY_ENV_DEFAULTS = {
    # A W&B run may log rows without the sweep metric; Ray would abort the whole sweep.
    "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
    # The run log is the record; Ray's json/csv/tensorboard loggers would duplicate it.
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    # The old output engine honours verbose=0 fully; the new one still prints boxes.
    "RAY_AIR_NEW_OUTPUT": "0",
    "RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS": "0",
    "RAY_DEDUP_LOGS": "0",
    # Programs run in the directory the user launched from, as with `wandb agent`.
    "RAY_CHDIR_TO_TRIAL_DIR": "0",
}


@dataclass(frozen=True)
class ClusterInfo:
    """What the Ray cluster offers, as printed when a sweep starts."""

    address: str
    nodes: int
    cpus: float
    gpus: float
    node_resources: tuple[tuple[float, float], ...]  # (CPUs, GPUs) of each node
    node_types: tuple[tuple[float, float], ...] = ()  # (CPUs, GPUs) of nodes an autoscaler may add

    def describe(self) -> str:
        return (f"Ray at {self.address}: {self.nodes} node{'s' if self.nodes != 1 else ''}, "
                f"{self.cpus:g} CPUs, {self.gpus:g} GPUs")


def prepare_environment() -> None:
    """Set raysweep's Ray defaults; the user's own environment always wins."""
    for key, value in _RAY_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    # raysweep reports failed runs itself (progress lines, results table).
    for name in ("ray", "ray.tune", "ray.train", "ray.air"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


#: Ray's cap on trials waiting for resources; 1 for searchers like raysweep's, unless set.
PENDING_ENV = "TUNE_MAX_PENDING_TRIALS_PG"


def allow_pending(slots: int | None) -> None:
    """Let Ray place as many trials at once as the cluster holds (`slots`), not one at a time.

    With one pending trial a sweep fills a cluster one trial per scheduling
    round (and an autoscaler sees demand for one node at a time); a full
    wave keeps bayes suggestions at most one wave ahead of the results.
    A value the user set wins (`restored_environment` removes raysweep's own).
    """
    if slots and PENDING_ENV not in os.environ:
        os.environ[PENDING_ENV] = str(slots)


@contextlib.contextmanager
def restored_environment() -> Iterator[None]:
    """Undo, on leaving, raysweep's changes to the variables it sets for Ray.

    A sweep sizes Ray's pending-trial cap to its own cluster and resources;
    left in the environment, it would size the caller's next Tuner (or the
    next sweep on another cluster) too.
    """
    keys = (*_RAY_ENV_DEFAULTS, PENDING_ENV)
    saved = {key: os.environ.get(key) for key in keys}
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def connect(address: str | None = None, *, num_cpus: int | None = None,
            num_gpus: int | None = None, dashboard_host: str = "127.0.0.1") -> ClusterInfo:
    """Join the cluster at `address` (or ``RAY_ADDRESS``), else start a local Ray.

    A Ray instance already initialised in this process is reused, which is how
    tests share one Ray per session and notebooks call `raysweep.agent` twice.
    """
    import ray

    prepare_environment()
    if not ray.is_initialized():
        address = address or os.environ.get("RAY_ADDRESS") or None
        kwargs: dict = {"log_to_driver": False, "logging_level": logging.ERROR,
                        "configure_logging": True}
        if address is None:
            # "local": a fresh instance, never a cluster someone else started on this machine.
            address = "local"
            kwargs.update(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
                          dashboard_host=dashboard_host)
        if address.startswith("ray://") and importlib.util.find_spec("grpc") is None:
            raise ClusterError(f"cannot connect to Ray at {address!r}: a ray:// address goes through Ray "
                               "Client, which needs `pip install 'raysweep[client]'` (ray[client]); "
                               f"on the cluster's head node `--address auto` needs nothing more{_auth_hint(address)}")
        try:
            ray.init(address=address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ClusterError(f"cannot connect to Ray at {address!r}: {exc}{_auth_hint(address)}") from exc
    return cluster_info()


def divert_native_stderr() -> Path:
    """Send what Ray writes to file descriptor 2 to a file; Python's `sys.stderr` stays the terminal.

    Ray's C++ side writes there directly, not through Python: ``gcs_client``
    warnings while a cluster refuses to connect, the ``*** SIGTERM received``
    banner with its stack, and the raylet and GCS a local Ray starts inherit
    it.  None of it is for the person watching the sweep (raysweep says
    what went wrong itself), so the command line points descriptor 2 at
    ``$TMPDIR/raysweep-<pid>-ray.log`` (removed at exit if empty) for the rest
    of the process, unless ``--verbose``; `sys.stderr` moves to a copy of the
    terminal's descriptor, so Python's messages and tracebacks still show.
    """
    path = Path(tempfile.gettempdir()) / f"raysweep-{os.getpid()}-ray.log"
    sys.stderr.flush()
    terminal = os.dup(2)
    diverted = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(diverted, 2)
    os.close(diverted)
    sys.stderr = os.fdopen(terminal, "w", buffering=1, encoding=sys.stderr.encoding,
                           errors="backslashreplace")
    atexit.register(_remove_if_empty, path)
    return path


def _remove_if_empty(path: Path) -> None:
    if path.exists() and path.stat().st_size == 0:
        path.unlink()


def _auth_hint(address: str | None) -> str:
    """Ray 2.60 clusters want a token; a client joining by an explicit address sends none unless told to."""
    if address in (None, "local") or os.environ.get("RAY_AUTH_MODE", "").lower() == "token":
        return ""
    return ("; if the cluster uses token authentication (new clusters in Ray 2.60 do), set "
            "RAY_AUTH_MODE=token and give the cluster's token in ~/.ray/auth_token, "
            "RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN")


def cluster_info() -> ClusterInfo:
    """Resources of the connected cluster, totalled and node by node."""
    import ray

    nodes = [n for n in ray.nodes() if n.get("Alive")]
    totals = ray.cluster_resources()
    per_node = tuple((n["Resources"].get("CPU", 0.0), n["Resources"].get("GPU", 0.0)) for n in nodes)
    return ClusterInfo(address=ray.get_runtime_context().gcs_address, nodes=len(nodes),
                       cpus=totals.get("CPU", 0.0), gpus=totals.get("GPU", 0.0),
                       node_resources=per_node, node_types=autoscaled_node_types())


#: Where Ray's cluster launcher leaves the autoscaler's config on the head (Ray Tune reads it too).
BOOTSTRAP_CONFIG = "~/ray_bootstrap_config.yaml"


def autoscaled_node_types() -> tuple[tuple[float, float], ...]:
    """(CPUs, GPUs) of the worker types the cluster launcher's autoscaler may start.

    A cluster from `cluster.yaml` starts with no GPU workers: a trial fits
    if the autoscaler can add a node for it.  A type whose resources are not
    written out is taken as big enough, since only the cloud knows its size.
    """
    try:
        config = yaml.safe_load(Path(BOOTSTRAP_CONFIG).expanduser().read_text()) or {}
    except (OSError, yaml.YAMLError):
        return ()
    found = []
    for node_type in (config.get("available_node_types") or {}).values():
        if node_type.get("max_workers", 0) > 0:
            resources = node_type.get("resources")
            found.append((float(resources.get("CPU", 0)), float(resources.get("GPU", 0)))
                         if resources else (float("inf"), float("inf")))
    return tuple(found)


def check_fits(info: ClusterInfo, cpus_per_trial: float, gpus_per_trial: float) -> None:
    """Refuse a trial size no node can hold: Ray would leave it pending forever."""
    nodes = info.node_resources + info.node_types
    if any(cpus_per_trial <= cpus and gpus_per_trial <= gpus for cpus, gpus in nodes):
        return
    offered = ", ".join(f"{c:g} CPUs/{g:g} GPUs" for c, g in nodes) or "no nodes"
    raise ClusterError(
        f"a trial asks for {cpus_per_trial:g} CPUs and {gpus_per_trial:g} GPUs, but no node of the "
        f"cluster has that much ({offered}); lower --cpus-per-trial/--gpus-per-trial or add a "
        "bigger node")
