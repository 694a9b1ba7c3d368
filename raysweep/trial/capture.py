"""The part of the ``wandb`` API that sweep scripts call, captured for Ray instead of sent to W&B.

Program mode (``raysweep run sweep.yaml``): the trial starts the sweep's
program with ``raysweep/_shim`` first on ``PYTHONPATH``, so ``import wandb``
finds the shim even when the real package is installed, and the shim puts this
module in ``sys.modules["wandb"]``.  `init` reads the sweep's values from
``WANDB_SWEEP_PARAM_PATH`` (the file W&B's agent writes), deep-merges them over
the script's own config and locks them, as W&B does.  Every committed
`log` row and every summary update goes out at once as one JSON line on the
pipe whose descriptor is in ``RAYSWEEP_RESULT_FD``; the trial turns each row
into a Ray result while the program trains on, so ASHA can judge it step by step.

Notebook flow (``raysweep.agent(sweep_id, function=train)``): `install_in_process`
makes this module ``wandb`` inside the Ray worker and sends rows straight to
`raysweep.trial.session.report_row`.

Supported: ``init`` (also as a context manager), ``config`` (attribute and item
access, ``update``, ``setdefaults``, ``keys``/``items``/``as_dict``/``get``),
``log(data, step=, commit=)`` with W&B's step and commit rules, ``summary``
(item/attribute set, ``update``), ``define_metric`` (accepted; it only shapes
W&B's charts, the summary keeps each key's last value), ``finish``, ``run``,
``termlog``/``termwarn``/``termerror``, and the `Run` attributes scripts read (``url``,
``get_sweep_url()``... return None, as W&B's do offline).  No-ops: `NOOPS` (``watch``,
``save``, ``alert``, ``login``, artifacts...) and the media/table classes in `PLACEHOLDERS`,
whose objects are dropped from logged rows.  README.md lists every name of wandb 0.31's API.
``mark_preempting`` is sent to the trial: a failure then requeues the run, whose next
attempt has ``run.resumed``, ``run.dir`` and ``run.step`` as W&B resumes them.

Side runs: a process the program forked or spawned (W&B's cross-validation pattern), or
an ``init`` after the script removed the agent's ``WANDB_RUN_ID``, is a run of its own
under W&B, not the sweep run.  Its ``init`` starts a side run whose config, history and
summary go to files under ``RAYSWEEP_SIDE_RUNS`` (``runs/<id>/side-runs/<name>/``),
never into the sweep run's pipe; the pipe only carries what the process that opened
it sends, so a forked child cannot add rows to the sweep run either.

An uncaught exception in the program finishes the run (exit code 1) at once and, should
the interpreter then hang on workers that never end (a process blocked on a queue), exits
after `EXIT_GRACE` seconds.  Nothing here opens a socket.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import random
import re
import stat
import string
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Union

from raysweep.values import Dropped, plain

#: Environment variable holding the descriptor of the pipe to the trial (program mode).
RESULT_FD_ENV = "RAYSWEEP_RESULT_FD"
#: Environment variable naming the folder where side runs are written (program mode).
SIDE_RUNS_ENV = "RAYSWEEP_SIDE_RUNS"
#: Set for a resumed attempt of a run: the history step it goes on from (`raysweep.trial.attempt`).
ENV_RESUMED = "RAYSWEEP_RESUMED_AT_STEP"
#: The run's own folder in the run log, kept across its attempts: ``wandb.run.dir``.
ENV_FILES = "RAYSWEEP_RUN_FILES"
#: Seconds an uncaught exception leaves the interpreter to exit before it is made to.
EXIT_GRACE = 5.0
__version__ = "0.31.0"  # the wandb API this stands in for
NOOPS = frozenset({
    "watch", "unwatch", "save", "restore", "alert", "login", "setup", "teardown", "log_artifact",
    "use_artifact", "link_artifact", "upsert_artifact", "finish_artifact", "log_model", "use_model",
    "link_model", "log_code", "require", "tensorboard", "termsetup", "plot_table",
    "write_logs", "pin_config_keys",
})
PLACEHOLDERS = frozenset({
    "Table", "Image", "Histogram", "Artifact", "Audio", "Video", "Html", "Object3D", "Molecule",
    "Plotly", "Graph", "AlertLevel", "plot", "EvalTable", "box3d", "ArtifactTTL",
})
#: Names of wandb's API that need W&B's servers or agent: a clear error, not a silent stand-in.
UNSUPPORTED = {
    "Api": "the public API reads W&B's servers; read raysweep's run log instead (raysweep.load)",
    "sweep": "create the sweep with `raysweep sweep FILE` or raysweep.sweep(config)",
    "agent": "run it with `raysweep agent ID` or raysweep.agent(id, function=train)",
    "controller": "raysweep's driver is the controller; run `raysweep run FILE`",
    "status": "run status is polled from W&B's servers; raysweep's run log has each run's state",
}
ReportFn = Callable[..., None]  # raysweep.trial.session.report_row(row, *, summary=None)


class Error(Exception):
    """Base of the errors the ``wandb`` API raises (``wandb.Error``)."""


class ConfigError(Error):
    """A config value changed without ``allow_val_change`` (W&B's ``ConfigError``)."""


class UsageError(Error):
    """An API call out of order, e.g. ``log`` on a finished run (W&B's ``UsageError``)."""


def _noop(*_args: Any, **_kwargs: Any) -> None:
    """What every W&B call that would upload, download or draw does here."""


class _Placeholder(Dropped):
    """Stands in for W&B's media, tables, artifacts and settings: built, used, never logged."""

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        pass

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name.startswith("_"):
            raise AttributeError(name)
        return _noop


_PLACEHOLDER_TYPES = {name: type(name, (_Placeholder,), {}) for name in PLACEHOLDERS}


class Settings:
    """``wandb.Settings(...)``: keeps what it is given, for ``run.settings``; unset fields read None."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return None

    def update(self, values: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        self.__dict__.update({**(values or {}), **kwargs})

    def model_copy(self, *_args: Any, **_kwargs: Any) -> Settings:
        return Settings(**self.__dict__)


def termlog(message: str = "", *, prefix: str = "") -> None:
    """Print a ``wandb: `` line on stderr, as W&B does."""
    print(f"wandb: {prefix}{message}", file=sys.stderr, flush=True)


def termwarn(message: str) -> None:
    termlog(message, prefix="WARNING ")


def termerror(message: str) -> None:
    termlog(message, prefix="ERROR ")


class Reporter:
    """Turns rows and summary updates into `report_row` calls, one per row.

    A summary update rides with the next row (or goes alone on `close`), so a
    script setting ``wandb.summary["best"]`` every epoch does not double the
    number of Ray results, which the scheduler counts.  Once a report raises
    (Ray's ``SystemExit`` when it stops the trial) nothing more is reported:
    a second report after the stop would block the training thread forever.
    """

    def __init__(self, report: ReportFn) -> None:
        self._report = report
        self._summary: dict[str, Any] = {}
        self._stopped = False
        self.preempting = False  # the run called mark_preempting(): a failure requeues it

    def mark_preempting(self) -> None:
        self.preempting = True

    def row(self, row: dict[str, Any]) -> None:
        summary, self._summary = self._summary, {}
        self._send(row, summary or None)

    def summary(self, values: dict[str, Any]) -> None:
        self._summary.update(values)

    def close(self) -> None:
        if self._summary:
            summary, self._summary = self._summary, {}
            self._send(None, summary)

    def _send(self, row: dict[str, Any] | None, summary: dict[str, Any] | None) -> None:
        if self._stopped:
            return
        try:
            self._report(row, summary=summary)
        except BaseException:
            self._stopped = True
            raise


class PipeChannel:
    """Program mode: one JSON line per message to the trial, written and flushed at once."""

    def __init__(self, fd: int) -> None:
        self._file = open(fd, "wb", closefd=False)  # noqa: SIM115 - lives as long as the process
        self._lock = threading.Lock()
        self._pid = os.getpid()  # a forked child inherits this object, not the right to write

    def row(self, row: dict[str, Any]) -> None:
        self._send({"row": row})

    def summary(self, values: dict[str, Any]) -> None:
        self._send({"summary": values})

    def mark_preempting(self) -> None:
        self._send({"preempting": True})

    def close(self) -> None:
        """Nothing to do: each message is flushed when sent."""

    def _send(self, message: dict[str, Any]) -> None:
        if os.getpid() != self._pid:
            return  # a forked child: its rows are not the sweep run's (its own `init` makes a side run)
        line = json.dumps(message, default=str).encode() + b"\n"
        with self._lock:
            try:
                self._file.write(line)
                self._file.flush()
            except BrokenPipeError:
                pass  # the trial is gone; raysweep's reaper is ending this process


class SideRunChannel:
    """A side run's files, named as a run's in the run log: config.yaml, wandb-history.jsonl
    (a row a line, appended), wandb-summary.json, wandb-metadata.json.

    JSON and YAML files are replaced whole (write, then rename), so a reader never sees half of one.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started = time.time()
        self._summary: dict[str, Any] = {}
        self._lock = threading.Lock()

    def row(self, row: dict[str, Any]) -> None:
        now = time.time()
        row = {**row, "_runtime": now - self.started, "_timestamp": now}
        line = json.dumps(row, default=str) + "\n"
        with self._lock, open(self.folder / "wandb-history.jsonl", "a", encoding="utf-8") as history:
            history.write(line)
        self._summary.update(row)

    def summary(self, values: dict[str, Any]) -> None:
        self._summary.update(values)

    def close(self) -> None:
        self._replace("wandb-summary.json", json.dumps(self._summary, default=str))

    def mark_preempting(self) -> None:
        """A side run is not requeued: only the sweep run is."""

    def start(self, run: Run, state: str) -> None:
        """Write the run's config (W&B's config.yaml form) and who it is."""
        import yaml  # here, not at the top: most programs never start a side run, and it costs every run 15 ms

        config = {"wandb_version": 1, **{k: {"desc": None, "value": v} for k, v in run.config.items()}}
        self._replace("config.yaml", yaml.safe_dump(config, sort_keys=False))
        meta = {"name": run.name, "group": run.group, "job_type": run.job_type, "pid": os.getpid(),
                "startedAt": self.started, "state": state}
        self._replace("wandb-metadata.json", json.dumps(meta, default=str))

    def _replace(self, name: str, text: str) -> None:
        partial = self.folder / f".{name}.{os.getpid()}.tmp"
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, self.folder / name)


def _side_run_folder(name: str) -> Path | None:
    """A new folder for side run `name` under ``RAYSWEEP_SIDE_RUNS`` (``name-2``... if taken)."""
    base = os.environ.get(SIDE_RUNS_ENV)
    if not base:
        return None
    stem = re.sub(r"[^A-Za-z0-9_.=-]", "_", name)[:100].lstrip(".") or "run"
    for number in range(1, 1000):
        folder = Path(base, stem if number == 1 else f"{stem}-{number}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
        except OSError:
            return None
    return None


Channel = Union["Reporter", "PipeChannel", "SideRunChannel"]  # where committed rows and summary updates go


def _channel_from_environment() -> Channel:
    """The pipe named by ``RAYSWEEP_RESULT_FD``, else a channel that drops everything.

    The variable is removed so the program's own subprocesses (which do not
    inherit the descriptor) cannot write into whatever file reuses its number.
    """
    fd = os.environ.pop(RESULT_FD_ENV, None)
    try:
        if fd is not None and stat.S_ISFIFO(os.fstat(int(fd)).st_mode):
            return PipeChannel(int(fd))
    except (OSError, ValueError):
        pass
    return Reporter(_noop)


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Values of a W&B config file (``wandb_version: 1`` then ``key: {value: v}``), like W&B's reader."""
    import yaml  # only for programs with config files: see `SideRunChannel.start`

    loaded = yaml.safe_load(Path(path).read_text()) or {}
    loaded.pop("wandb_version", None)
    return {key: item["value"] for key, item in loaded.items()}


def _parse_config(params: Any, include: Any = None, exclude: Any = None) -> dict[str, Any]:
    """A config given as dict, Config, argparse Namespace or YAML path, as a dict (W&B's parse_config)."""
    if isinstance(params, (str, os.PathLike)):
        params = read_config_file(params)
    elif isinstance(params, Config):
        params = dict(params)
    elif not isinstance(params, Mapping):
        if not hasattr(params, "__dict__"):
            raise TypeError("config must be a dict or have a __dict__ attribute.")
        params = vars(params)
    params = dict(params)
    if include:
        params = {k: v for k, v in params.items() if k in include}
    if exclude:
        params = {k: v for k, v in params.items() if k not in exclude}
    return params


def _merge_dicts(dest: dict[str, Any], src: Mapping[str, Any]) -> dict[str, Any]:
    """Recursively merge `src` into `dest` (W&B's config_util.merge_dicts)."""
    for key, value in src.items():
        if isinstance(value, dict) and isinstance(dest.get(key), dict):
            _merge_dicts(dest[key], value)
        else:
            dest[key] = value
    return dest


class Config:
    """``wandb.config``: W&B's Config semantics, sweep keys locked against later updates."""

    def __init__(self) -> None:
        object.__setattr__(self, "_items", {})
        object.__setattr__(self, "_locked", {})

    def __getattr__(self, key: str) -> Any:
        items = self.__dict__.get("_items")
        if items is None or key not in items:
            raise AttributeError(f"{self.__class__!r} object has no attribute {key!r}")
        return items[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if not self._check_locked(key):
            key, value = self._sanitize(key, value)
            self._items[key] = value

    __setattr__ = __setitem__

    def __getitem__(self, key: str) -> Any:
        return self._items[key]

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __repr__(self) -> str:
        return str(dict(self))

    def keys(self) -> list[str]:
        return [k for k in self._items if not k.startswith("_")]

    def items(self) -> list[tuple[str, Any]]:
        return [(k, v) for k, v in self._items.items() if not k.startswith("_")]

    def get(self, *args: Any) -> Any:
        return self._items.get(*args)

    def as_dict(self) -> dict[str, Any]:
        return dict(self)

    def update(self, d: Any, allow_val_change: bool | None = None) -> None:
        self._update(d, allow_val_change)

    def setdefaults(self, d: Any) -> None:
        fresh = {k: v for k, v in _parse_config(d).items() if k not in self._items}
        self._items.update(dict(self._sanitize(k, v) for k, v in fresh.items()))

    def persist(self) -> None:
        """W&B re-sends the config here; nothing to send."""

    def _update(self, d: Any, allow_val_change: bool | None = None, ignore_locked: bool = False) -> None:
        parsed = _parse_config(d)
        locked = {k for k in parsed if self._check_locked(k, ignore_locked)}
        sanitized = dict(self._sanitize(k, v, allow_val_change) for k, v in parsed.items() if k not in locked)
        self._items.update(sanitized)

    def _merge_locked(self, d: Mapping[str, Any], user: str) -> None:
        """Deep-merge `d` over the current values and lock its keys (W&B's merge_locked)."""
        for key, value in d.items():
            key, value = self._sanitize(key, value, allow_val_change=True)
            self._locked[key] = user
            current = self._items.get(key)
            self._items[key] = _merge_dicts(current, value) if isinstance(current, dict) and \
                isinstance(value, dict) else value

    def _check_locked(self, key: str, ignore_locked: bool = False) -> bool:
        user = self._locked.get(key)
        if user is not None and not ignore_locked:
            termwarn(f"Config item '{key}' was locked by '{user}' (ignored update).")
        return user is not None

    def _sanitize(self, key: str, value: Any, allow_val_change: bool | None = None) -> tuple[str, Any]:
        key, value = key.strip("-"), plain(value)
        if not allow_val_change and key in self._items and value != self._items[key]:
            raise ConfigError(f'Attempted to change value of key "{key}" from {self._items[key]} to {value}\n'
                              "If you really want to do this, pass allow_val_change=True to config.update()")
        return key, value


class Summary(dict[str, Any]):
    """``run.summary``: each key's last logged value, plus what the script sets (sent to the trial)."""

    def __init__(self, channel: Channel) -> None:
        super().__init__()
        object.__setattr__(self, "_channel", channel)

    def __getattr__(self, key: str) -> Any:
        if key not in self:
            raise AttributeError(f"summary has no key {key!r}")
        return self[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    __setattr__ = __setitem__

    def update(self, d: Mapping[str, Any] = {}, **kwargs: Any) -> None:  # type: ignore[override]  # noqa: B006 - W&B's summary.update(dict) form only
        values = plain({**d, **kwargs})
        super().update(values)
        self._channel.summary(values)

    def _record(self, row: Mapping[str, Any]) -> None:
        """Take a committed row's values as the latest, without sending them again."""
        super().update(row)


class _Capture:
    """What this process captures into: the channel, the sweep's values, W&B's step counter.

    One per trial: runs that follow each other in one program (``init`` after
    ``finish``) continue the same history, because a trial is one W&B run.
    """

    def __init__(self, channel: Channel, sweep: Mapping[str, Any] | None, run_id: str | None,
                 resumed_at: int | None = None, files: str | None = None) -> None:
        self.channel = channel
        self.sweep = sweep
        self.run_id = run_id
        self.pid = os.getpid()
        #: The run id the agent gave the sweep run (program mode); a run without it is a side run.
        self.agent_run_id = os.environ.get("WANDB_RUN_ID") if isinstance(channel, PipeChannel) else None
        self.resumed = resumed_at is not None
        self.step = resumed_at or 0
        self.files = files
        self.pending: dict[str, Any] = {}
        self.lock = threading.RLock()

    def owns(self, requested_id: str | None) -> bool:
        """Whether an ``init`` asking for run `requested_id` here starts (or resumes) the sweep run."""
        if os.getpid() != self.pid:
            return False  # a forked worker
        if isinstance(self.channel, PipeChannel):
            return requested_id == self.agent_run_id  # the script removed the agent's WANDB_RUN_ID
        return SIDE_RUNS_ENV not in os.environ  # a spawned worker of a program (its pipe stays with it)

    def sweep_values(self) -> dict[str, Any]:
        """The sweep's values: given in-process, else the agent's file at WANDB_SWEEP_PARAM_PATH."""
        if self.sweep is not None:
            return dict(self.sweep)
        path = os.environ.get("WANDB_SWEEP_PARAM_PATH")
        return read_config_file(path) if path else {}

    def log(self, data: Mapping[str, Any], step: int | None, commit: bool | None, summary: Summary) -> None:
        """W&B's rules: rows accumulate until committed; a larger `step` commits the pending row."""
        if not isinstance(data, Mapping):
            raise TypeError("wandb.log must be passed a dictionary")
        if any(not isinstance(key, str) for key in data):
            raise TypeError("Key values passed to `wandb.log` must be strings.")
        with self.lock:
            if step is not None and step < self.step:
                termwarn(f"Tried to log to step {step} that is less than the current step {self.step}. Steps "
                         "must be monotonically increasing, so this data will be ignored. See "
                         "https://wandb.me/define-metric to log data out of order.")
                return
            if step is not None and step > self.step:
                self.commit(summary)
                self.step = step
            self.pending.update(data)
            if commit or (commit is None and step is None):
                self.commit(summary)

    def commit(self, summary: Summary) -> None:
        """Send the pending row as history step `self.step` and start the next one."""
        with self.lock:
            if not self.pending:
                return
            row = {**plain(self.pending), "_step": self.step}
            self.pending, self.step = {}, self.step + 1
            summary._record(row)
            self.channel.row(row)


class Run:
    """``wandb.run``: the run a trial is; its `log`, `config`, `summary` and `finish`."""

    def __init__(self, capture: _Capture, config: Config, **settings: Any) -> None:
        self._capture = capture
        self.config = config
        self.summary = Summary(capture.channel)
        self.id: str = (capture.run_id or settings.get("id") or os.environ.get("WANDB_RUN_ID")
                        or "".join(random.choices(string.ascii_lowercase + string.digits, k=8)))
        self.name: str = settings.get("name") or os.environ.get("WANDB_NAME") or self.id
        self.project: str = settings.get("project") or os.environ.get("WANDB_PROJECT") or "uncategorized"
        self.entity: str | None = settings.get("entity") or os.environ.get("WANDB_ENTITY")
        self.group, self.job_type = settings.get("group"), settings.get("job_type")
        self.notes, self.tags = settings.get("notes"), tuple(settings.get("tags") or ())
        self.sweep_id: str | None = os.environ.get("WANDB_SWEEP_ID")
        given = settings.get("settings")
        self.settings = given if isinstance(given, Settings) else Settings(**dict(given or {}))
        self.start_time = time.time()
        self.starting_step = capture.step
        self.resumed = capture.resumed
        self.offline, self.disabled = True, False
        self._finished = False

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name in NOOPS:
            return _noop
        if name in UNSUPPORTED:
            raise AttributeError(f"Run.{name} is not available under raysweep: {UNSUPPORTED[name]}")
        raise AttributeError(f"raysweep's wandb stand-in has no Run.{name}; supported: log, config, summary, "
                             f"define_metric, finish, and the no-ops {', '.join(sorted(NOOPS))}")

    # W&B offline has no URLs: these return None, as W&B's do offline (scripts print or format them).
    url = sweep_url = project_url = None

    def get_url(self) -> str | None:
        return None

    def get_sweep_url(self) -> str | None:
        return None

    def get_project_url(self) -> str | None:
        return None

    def project_name(self) -> str:
        return self.project

    @property
    def path(self) -> str:
        """``entity/project/run_id``, as W&B writes it."""
        return "/".join([self.entity or "", self.project, self.id])

    @property
    def config_static(self) -> Config:
        return self.config

    @property
    def sync_dir(self) -> str:
        return str(Path(self.dir).parent)

    def display(self, *_args: Any, **_kwargs: Any) -> bool:
        return False

    def to_html(self, *_args: Any, **_kwargs: Any) -> str:
        return ""

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: type | None, *_exc: object) -> None:
        self.finish(exit_code=1 if exc_type else 0)

    @property
    def step(self) -> int:
        return self._capture.step

    @property
    def dir(self) -> str:
        """The run's own folder (``wandb.run.dir``): in the run log, kept across the run's attempts.

        Outside a sweep trial, ``$WANDB_DIR/wandb/run-<id>/files`` as W&B names it.
        """
        base = os.environ.get("WANDB_DIR") or os.getcwd()
        path = Path(self._capture.files or Path(base, "wandb", f"run-{self.id}", "files"))
        path.mkdir(parents=True, exist_ok=True)
        return str(path)

    def mark_preempting(self) -> None:
        """W&B's contract: a run that then exits non-zero (or dies of SIGTERM) is requeued, not failed."""
        self._capture.channel.mark_preempting()

    def log(self, data: Mapping[str, Any], step: int | None = None, commit: bool | None = None) -> None:
        if self._finished:
            raise UsageError(f"Run ({self.id}) is finished. The call to `log` will be ignored. "
                             "Please make sure that you are using an active run.")
        self._capture.log(data, step, commit, self.summary)

    def define_metric(self, name: str, *_args: Any, **_kwargs: Any) -> None:
        """Accepted: W&B uses it for chart axes and summary aggregates; the summary keeps last values."""

    def finish(self, exit_code: int | None = None, quiet: bool | None = None) -> None:
        """Commit the pending row and send pending summary updates, like W&B's finish."""
        if self._finished:
            return
        self._capture.commit(self.summary)
        if isinstance(self._capture.channel, SideRunChannel):
            self._capture.channel.start(self, "finished" if not exit_code else "failed")
        self._capture.channel.close()
        self._finished = True
        if globals().get("run") is self:
            _set_globals(run=None)

    join = finish


def _set_globals(**values: Any) -> None:
    """Rebind ``wandb.run``/``wandb.config``/``wandb.summary`` (this module is ``wandb``)."""
    globals().update(values)


def _start(capture: _Capture) -> None:
    """Make `capture` this process's target, with fresh module-level ``config`` and ``summary``."""
    global _capture
    _capture = capture
    _set_globals(run=None, config=Config(), summary=Summary(capture.channel))


def init(config: Any = None, *, config_exclude_keys: Any = None, config_include_keys: Any = None,
         reinit: bool | str | None = None, **settings: Any) -> Run:
    """Start the run: defaults from config-defaults.yaml, then `config`, then the sweep's values, locked.

    Other keyword arguments (project, entity, name, mode, settings, resume, ...) are accepted.
    A second call while this process's run is active returns it, unless ``reinit`` is
    True or ``"finish_previous"`` (the run is finished, the next continues its history:
    a trial is one W&B run) or ``"create_new"`` (a side run).  A run that is not the
    sweep run (see the module docstring) is a side run.  For the sweep run ``id`` and
    ``resume`` are ignored with W&B's warning: a sweep run is resumed only when it is
    requeued, and then ``run.resumed`` is True.
    """
    requested = os.environ.get("WANDB_RUN_ID") or settings.get("id")
    mine = run is not None and run._capture.pid == os.getpid()
    if reinit == "create_new" or not _capture.owns(requested):
        return _start_side_run(config, config_include_keys, config_exclude_keys, settings)
    if mine and run is not None and reinit in (True, "finish_previous"):
        run.finish()
    elif mine and run is not None:
        return run
    for key in ("id", "resume"):
        if settings.get(key) is not None and os.environ.get("WANDB_SWEEP_ID"):
            termwarn(f"Ignored wandb.init() arg {key} when running a sweep.")
            settings.pop(key)
    started = Run(_capture, _initial_config(config, config_include_keys, config_exclude_keys, _capture), **settings)
    _set_globals(run=started, config=started.config, summary=started.summary)
    return started


def _initial_config(config: Any, include: Any, exclude: Any, capture: _Capture) -> Config:
    """config-defaults.yaml, then the script's `config`, then the sweep's values (locked), as W&B."""
    values = Config()
    if Path("config-defaults.yaml").is_file():
        values.update(read_config_file("config-defaults.yaml"))
    values._update(_parse_config(config or {}, include, exclude), allow_val_change=True, ignore_locked=True)
    values._merge_locked(capture.sweep_values(), user="sweep")
    return values


def _start_side_run(config: Any, include: Any, exclude: Any, settings: dict[str, Any]) -> Run:
    """A run of its own (a cross-validation fold...): written under RAYSWEEP_SIDE_RUNS, never the sweep's."""
    name = settings.get("name") or "-".join(filter(None, [settings.get("job_type"), str(os.getpid())]))
    folder = _side_run_folder(str(name))
    channel: Channel = SideRunChannel(folder) if folder else Reporter(_noop)
    if folder is None:
        termwarn(f"run {name!r} is not the sweep run and has no side-run folder here; its values are dropped")
    capture = _Capture(channel, {}, None)
    started = Run(capture, _initial_config(config, include, exclude, capture), **settings)
    if isinstance(channel, SideRunChannel):
        channel.start(started, "running")
    _set_globals(run=started, config=started.config, summary=started.summary)
    return started


def log(data: Mapping[str, Any], step: int | None = None, commit: bool | None = None) -> None:
    if run is None:
        raise Error("You must call wandb.init() before wandb.log()")
    run.log(data, step=step, commit=commit)


def define_metric(name: str, *args: Any, **kwargs: Any) -> None:
    if run is not None:
        run.define_metric(name, *args, **kwargs)


def finish(exit_code: int | None = None, quiet: bool | None = None) -> None:
    if run is not None:
        run.finish(exit_code, quiet)


def mark_preempting() -> None:
    if run is not None:
        run.mark_preempting()


join = finish


def install_in_process(config: Mapping[str, Any], *, run_id: str | None = None,
                       report: ReportFn | None = None, resumed_at: int | None = None,
                       files: str | None = None) -> None:
    """Make this module ``wandb`` in this process, capturing one trial with sweep values `config`.

    For the notebook flow: call it in the Ray worker before the user's
    ``train`` function is unpickled.  cloudpickle stores a global module such
    as ``wandb`` by name and imports it again when it loads the function, so
    with this module in ``sys.modules["wandb"]`` first, ``train`` calls land
    here — whether or not the real package is installed on the worker.
    Rows go to `report` (default `raysweep.trial.session.report_row`); call `finish`
    after ``train`` returns, as W&B's agent does.  `resumed_at` and `files`:
    see `raysweep.trial.attempt.Attempt`.
    """
    if report is None:
        from raysweep.trial.session import report_row

        report = report_row
    _start(_Capture(Reporter(report), dict(config), run_id, resumed_at, files))
    sys.modules["wandb"] = sys.modules[__name__]


def __getattr__(name: str) -> Any:
    """W&B's no-op calls and placeholder classes; a clear error for the rest of its API."""
    if name in NOOPS:
        return _noop
    if name in UNSUPPORTED:
        raise AttributeError(f"wandb.{name} is not available under raysweep: {UNSUPPORTED[name]}")
    if name in _PLACEHOLDER_TYPES:
        return _PLACEHOLDER_TYPES[name] if name != "plot" else _PLACEHOLDER_TYPES[name]()
    raise AttributeError(f"raysweep's wandb stand-in has no wandb.{name} (it captures init, config, log, "
                         "summary, define_metric and finish for Ray; W&B's servers are never contacted)")


def _finish_at_exit() -> None:
    """Program mode: commit what the script left pending when it exits without `finish`."""
    if run is not None:
        run.finish()


def _exit_on_uncaught(previous: Callable[..., Any]) -> Callable[..., None]:
    """An excepthook: the traceback as before, the run finished (exit code 1), and an exit for sure.

    A script whose main thread raises while workers it started block on a queue would
    otherwise never exit (the interpreter joins them), and its trial would hang.
    """

    def hook(*exc_info: Any) -> None:
        previous(*exc_info)
        if run is not None and os.getpid() == _capture.pid:
            with contextlib.suppress(Exception):
                run.finish(exit_code=1)
        threading.Thread(target=_exit_later, daemon=True).start()

    return hook


def _exit_later() -> None:
    """Leave the interpreter `EXIT_GRACE` seconds to exit on its own, then end the process."""
    time.sleep(EXIT_GRACE)
    sys.stderr.flush()
    os._exit(1)


run: Run | None = None
config = Config()
_capture = _Capture(_channel_from_environment(), None, None,
                    int(os.environ[ENV_RESUMED]) if os.environ.get(ENV_RESUMED) else None,
                    os.environ.get(ENV_FILES))
summary = Summary(_capture.channel)
if isinstance(_capture.channel, PipeChannel):
    atexit.register(_finish_at_exit)
    sys.excepthook = _exit_on_uncaught(sys.excepthook)
