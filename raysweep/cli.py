"""The `raysweep` command: a thin layer over the library.

Every user error is a `RaysweepError`; it is printed as a message, without a
traceback, and the command exits with status 2 before anything starts.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from raysweep.driver.settings import DEFAULT_OUT, FunctionTarget, Resources, Settings
from raysweep.errors import RaysweepError

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C


def _add_run_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by `run` and `agent`: budget, resources, where results go."""
    parser.add_argument("--count", type=int, help="run at most N runs (like `wandb agent --count`)")
    parser.add_argument("--function", metavar="MODULE:FN",
                        help="run this Python function instead of the sweep's program")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="run-log directory (default: %(default)s)")
    parser.add_argument("--address", help="Ray cluster to join (auto, ray://host:10001, host:port)")
    parser.add_argument("--cpus-per-trial", type=float,
                        help=f"CPUs of each run (default: {Resources.cpus_per_trial:g}; a resume: the sweep's)")
    parser.add_argument("--gpus-per-trial", type=float,
                        help="fractions pack runs on one GPU: 0.25 runs four per GPU "
                             f"(default: {Resources.gpus_per_trial:g}; a resume: the sweep's)")
    parser.add_argument("--max-concurrent", type=int, help="at most N runs at once")
    parser.add_argument("--seed", type=int, help="seed of the searcher's suggestions")
    parser.add_argument("--max-failures", type=int, default=Settings.max_failures,
                        help="retries of a crashed run, e.g. when its node is lost (default: %(default)s)")
    parser.add_argument("--storage", metavar="PATH|URI",
                        help="where Ray keeps its experiment directory: a shared path, s3://... "
                             "or gs://... (default: inside the run log)")
    parser.add_argument("--run-timeout", type=float, help="kill a program run after this many seconds")
    parser.add_argument("--kill-grace", type=float, default=Settings.kill_grace,
                        help="seconds between SIGTERM and SIGKILL when a run is stopped")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--verbose", action="store_true",
                        help="stream each program's output, prefixed by run name, and Ray's own messages")
    output.add_argument("--quiet", action="store_true", help="print only the results table")
    parser.add_argument("--top", type=int, default=10, help="rows of the final results table")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="raysweep", description="Run W&B sweep YAML files, unchanged, on Ray Tune.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")
    p = verbs.add_parser("validate", help="check a sweep file and summarise it")
    p.add_argument("sweep")
    p = verbs.add_parser("show", help="show the Ray search space, searcher and scheduler of a sweep")
    p.add_argument("sweep")
    p = verbs.add_parser("sample", help="draw N run configs as JSON lines, as a run would")
    p.add_argument("sweep")
    p.add_argument("-n", type=int, default=5)
    p.add_argument("--seed", type=int)
    p = verbs.add_parser("run", help="run a sweep on Ray (or --resume an interrupted one)")
    p.add_argument("sweep", nargs="?", help="sweep YAML (omit with --resume)")
    p.add_argument("--resume", metavar="DIR", help="complete the interrupted sweep in this run log")
    p.add_argument("--report", action="store_true",
                   help="write the HTML report into the run log when the sweep ends")
    _add_run_options(p)
    p = verbs.add_parser("results", help="print the results table of a run log")
    p.add_argument("dir")
    p.add_argument("--top", type=int)
    p.add_argument("--csv", metavar="FILE", help="also write every run to a CSV file")
    p = verbs.add_parser("report", help="write the offline HTML report of a run log "
                                        "(parallel coordinates, importance, learning curves)")
    p.add_argument("dir", help="run-log directory; a sweep that is still running works too")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="where to write the report (default: DIR/report.html)")
    p = verbs.add_parser("sweep", help="create a sweep (run-log directory) and print its id")
    p.add_argument("sweep")
    p.add_argument("--out", default=str(DEFAULT_OUT))
    p = verbs.add_parser("agent", help="run runs of a sweep created with `raysweep sweep`")
    p.add_argument("sweep_id")
    _add_run_options(p)
    return parser


def _load(path: str, *, runs_program: bool = True) -> Any:
    """The sweep file's spec; a missing `program` is an error only for commands that run it."""
    from raysweep.spec.load import load_spec

    if not Path(path).is_file():
        raise RaysweepError(f"{path}: no such sweep file")
    return load_spec(Path(path), check_program=True if runs_program else "warn")


def cmd_validate(args: argparse.Namespace) -> int:
    from raysweep.search.show import summary_line

    print(f"valid: {summary_line(_load(args.sweep, runs_program=False))}")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from raysweep.search.show import describe_sweep

    print(describe_sweep(_load(args.sweep, runs_program=False)))
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from raysweep.search.show import sample_configs

    for config in sample_configs(_load(args.sweep, runs_program=False), args.n, seed=args.seed):
        print(json.dumps(config))
    return 0


def _function(args: argparse.Namespace) -> FunctionTarget | None:
    """`--function module:function`, from the current directory; it must import before Ray starts."""
    if not args.function:
        return None
    target = FunctionTarget.parse(args.function)
    target.load()
    return target


def _resources(args: argparse.Namespace) -> Resources | None:
    """The resources given on the command line; None when none is (a resume keeps the sweep's)."""
    if args.cpus_per_trial is None and args.gpus_per_trial is None and args.max_concurrent is None:
        return None
    return Resources(Resources.cpus_per_trial if args.cpus_per_trial is None else args.cpus_per_trial,
                     Resources.gpus_per_trial if args.gpus_per_trial is None else args.gpus_per_trial,
                     args.max_concurrent)


def _run_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return dict(
        count=args.count, address=args.address, out=args.out, seed=args.seed, resources=_resources(args),
        verbose=args.verbose, progress=not args.quiet, max_failures=args.max_failures,
        run_timeout=args.run_timeout, kill_grace=args.kill_grace, storage=args.storage)


def _print_table(runs: Any, spec: Any, top: int | None) -> None:
    """The results table, best first, and why each crashed run crashed."""
    from raysweep.results.table import failures, results_table, rich_results_table

    if sys.stdout.isatty():
        from rich.console import Console

        Console().print(rich_results_table(runs, spec, top=top))
    else:
        print(results_table(runs, spec, top=top))
    crashed = failures(runs)
    if crashed:
        print(f"\ncrashed runs:\n{crashed}")


def _finish(result: Any, args: argparse.Namespace) -> int:
    """End of `run`/`agent`: the table, the report if asked, exit 130 if interrupted."""
    print(f"\nsweep {result.state}: {len(result.runs)} runs, log in {result.path}\n")
    _print_table(result.runs, result.spec, args.top)
    if getattr(args, "report", False):
        from raysweep.results.page import report

        print(f"report: {report(result.path)}", flush=True)
    if result.state == "cancelled":
        print(f"raysweep: interrupted; resume with `raysweep run --resume {result.path}`",
              file=sys.stderr)
        if result.exit_code:  # drained: a repeated signal must not break Ray's shut-down on the way out
            for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(signum, signal.SIG_IGN)
        return result.exit_code or EXIT_INTERRUPTED
    return 0


def _quiet_ray(args: argparse.Namespace) -> None:
    """Keep Ray's native log lines and crash banners off the terminal, unless --verbose."""
    if not args.verbose:
        from raysweep.driver.cluster import divert_native_stderr

        divert_native_stderr()


def cmd_run(args: argparse.Namespace) -> int:
    if not args.sweep and not args.resume:
        raise RaysweepError("run: give a sweep file, or --resume DIR")
    function = _function(args)
    sweep = _load(args.sweep) if args.sweep else None
    if args.resume:
        from raysweep.runlog.log import RunLog

        RunLog.open(args.resume)  # a directory that is not a run log is refused before Ray starts
    _quiet_ray(args)
    from raysweep.driver.runner import run  # imports Ray Tune and the searchers: seconds, so after the checks

    result = run(sweep, resume=args.resume, function=function, **_run_kwargs(args))
    return _finish(result, args)


def cmd_results(args: argparse.Namespace) -> int:
    from raysweep.runlog.log import load
    from raysweep.spec.load import load_spec

    runs = load(Path(args.dir))
    _print_table(runs, load_spec(Path(args.dir) / "sweep.yaml", check_program=False), args.top)
    if args.csv:
        runs.to_csv(args.csv, index=False)
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from raysweep.driver.notebook import sweep

    print(sweep(_load(args.sweep), out=args.out))
    return 0


def cmd_agent(args: argparse.Namespace) -> int:
    from raysweep.driver.notebook import agent

    function = _function(args)
    _quiet_ray(args)
    return _finish(agent(args.sweep_id, function=function, **_run_kwargs(args)), args)


def cmd_report(args: argparse.Namespace) -> int:
    from raysweep.results.page import report

    print(report(Path(args.dir), args.output))
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "validate": cmd_validate, "show": cmd_show, "sample": cmd_sample, "run": cmd_run,
    "results": cmd_results, "report": cmd_report, "sweep": cmd_sweep, "agent": cmd_agent,
}


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    print(f"warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    warnings.showwarning = _show_warning
    try:
        return COMMANDS[args.verb](args)
    except RaysweepError as exc:
        if args.debug:
            raise
        print(f"raysweep {args.verb}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:  # a second signal, or one outside the sweep's loop
        print("raysweep: interrupted; resume with `raysweep run --resume DIR`", file=sys.stderr)
        return 128 + exc.signum if hasattr(exc, "signum") else EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
