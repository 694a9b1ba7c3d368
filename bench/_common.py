"""What every benchmark script shares: its command line, the machine it ran on, its RESULTS.md section.

Benchmarks on a shared 2-core machine are only worth their ratios, so every
figure goes out with the load average it was measured under and the exact
command that produced it.  Each script regenerates its own section of
``bench/RESULTS.md`` (between ``<!-- <name> -->`` markers) and leaves the
others alone.  Top-level imports are stdlib only: `search_quality.py` imports
this module inside W&B's reference venv too.
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "RESULTS.md"
#: Order of the sections in RESULTS.md, whichever script writes first.
SECTIONS = ("overhead", "overhead-display", "scale", "early_stopping", "search_quality")
STARTED = time.monotonic()


def reference_python() -> str:
    """The interpreter of the venv holding W&B's engine (``sweeps==0.3.0``)."""
    return os.environ.get("RAYSWEEP_REF_PYTHON", str(REPO / ".venv-ref" / "bin" / "python"))


def parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark has: ``--quick``, ``--results``, ``--out``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true",
                   help="a seconds-long smoke run (what tests/test_bench.py runs); not a result")
    p.add_argument("--results", type=Path, default=None,
                   help="markdown file whose section to regenerate (default: bench/RESULTS.md; "
                        "with --quick: <out>/RESULTS.md, so a smoke run never replaces real figures)")
    p.add_argument("--out", type=Path, default=None,
                   help="scratch directory for run logs and raw data (default: a new temporary one)")
    return p


def prepare(args: argparse.Namespace, name: str) -> tuple[Path, Path]:
    """The scratch directory and the results file of this invocation."""
    out = args.out or Path(tempfile.mkdtemp(prefix=f"raysweep-bench-{name}-"))
    out.mkdir(parents=True, exist_ok=True)
    results = args.results or (out / "RESULTS.md" if args.quick else RESULTS)
    return out.resolve(), results


def isolate_ray() -> None:
    """Give the Ray instances this benchmark starts (in this process and its children) their own temp dir.

    Without a ``--address``, ``ray.init()`` joins the cluster named in
    ``/tmp/ray/ray_current_cluster`` (left by any ``ray start`` on the machine,
    even a stopped one, where it waits for a GCS that never answers); a
    private ``RAY_TMPDIR`` makes every variant start a fresh local Ray, and keeps
    other users' Ray sessions out of the measurement.
    """
    if "RAY_TMPDIR" not in os.environ:
        os.environ["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="rsb", dir="/tmp")  # short: socket paths
        atexit.register(shutil.rmtree, os.environ["RAY_TMPDIR"], ignore_errors=True)


def load() -> list[float]:
    """The 1, 5 and 15 minute load averages, rounded, to go with every measurement."""
    return [round(x, 2) for x in os.getloadavg()]


def versions(*packages: str) -> dict[str, str]:
    """Installed versions of `packages` in this interpreter (``-`` when absent)."""
    found = {"python": platform.python_version()}
    for package in packages:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "-"
    return found


def header(title: str, extra_versions: dict[str, str] | None = None,
           packages: Sequence[str] = ("raysweep", "ray")) -> str:
    """The lines every section starts with: command, date, machine, versions, load at the end."""
    command = shlex.join([os.path.relpath(sys.executable, REPO), *sys.argv])
    found = {**versions(*packages), **(extra_versions or {})}
    return "\n".join([
        f"## {title}", "",
        f"- command: `{command}` (from the repository root)",
        f"- date: {datetime.datetime.now().astimezone().isoformat(timespec='seconds')}",
        f"- machine: {os.cpu_count()} cores, {platform.machine()}, {platform.system()} "
        f"{platform.release()}; load average at the end (1/5/15 min): {load()}",
        f"- duration of the whole run: {(time.monotonic() - STARTED) / 60:.1f} min",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in found.items()) + f"; raysweep source: {source()}",
        ""])


def source() -> str:
    """Which raysweep was measured: the checkout (its commit, and whether raysweep/ had uncommitted
    changes) or, with ``PYTHONPATH`` pointing at an exported snapshot, that directory."""
    import raysweep

    package = Path(raysweep.__file__).resolve().parent
    if package != REPO / "raysweep":
        return f"snapshot {package.parent} (`git archive <commit> raysweep`, on PYTHONPATH)"

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True).stdout.strip()
    changed = git("status", "--porcelain", "--", "raysweep").splitlines()
    return f"checkout at commit {git('rev-parse', '--short', 'HEAD') or '?'}" + (
        f" + uncommitted changes in {len(changed)} file(s) under raysweep/" if changed else "")


def timed(fn: Callable[..., Any], *args: Any) -> tuple[Any, float]:
    """`fn(*args)` and the seconds it took."""
    started = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - started


def write_section(path: Path, name: str, text: str) -> None:
    """Replace section `name` of `path` by `text` (or add it in `SECTIONS` order); atomic."""
    sections = _read_sections(path)
    sections[name] = text.strip() + "\n"
    order = [s for s in SECTIONS if s in sections] + [s for s in sections if s not in SECTIONS]
    body = "# Benchmark results\n\nRegenerated section by section by the scripts in `bench/` " \
           "(see bench/README.md). Ratios measured side by side count; absolute times depend on " \
           "the machine's load, given with each section.\n\n"
    body += "\n".join(f"<!-- {s} -->\n{sections[s]}<!-- /{s} -->\n" for s in order)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, path)
    print(f"wrote section {name!r} of {path}", flush=True)


def _read_sections(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    text, found = path.read_text(encoding="utf-8"), {}
    while (start := text.find("<!-- ")) >= 0:
        name = text[start + 5:text.index(" -->", start)]
        end = text.find(f"<!-- /{name} -->", start)
        if end < 0:
            break
        found[name] = text[text.index("\n", start) + 1:end]
        text = text[end:]
        text = text[text.index("\n") + 1:] if "\n" in text else ""
    return found


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table; floats get 3 significant digits."""
    def cell(value: Any) -> str:
        return f"{value:.3g}" if isinstance(value, float) else str(value)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def run_json(command: Sequence[str], *, stdin: str | None = None, timeout: float = 3600,
             env: dict[str, str] | None = None) -> tuple[Any, float]:
    """Run `command`, return the JSON of its last stdout line and its wall time in seconds."""
    started = time.perf_counter()
    proc = subprocess.run(list(command), input=stdin, capture_output=True, text=True, timeout=timeout,
                          cwd=REPO, env={**os.environ, **(env or {})})
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), wall


def emit(value: Any) -> None:
    """The last stdout line a child process answers its parent with (see `run_json`)."""
    print(json.dumps(value), flush=True)
