"""The exceptions raysweep raises for things a user can get wrong.

One base class, `RaysweepError`, so the CLI can turn every user error into a
clear message and exit code 2 without a traceback; one subclass per kind of
mistake, so callers can tell a bad sweep file from a missing program.
"""

from __future__ import annotations

from dataclasses import dataclass


class RaysweepError(Exception):
    """Base of every error raysweep reports to its user."""


@dataclass(frozen=True)
class Violation:
    """One problem in a sweep config: where it is and what to write instead.

    ``path`` is the dotted key path (``parameters.optimizer.parameters.lr.max``);
    ``message`` says what is wrong and how to fix it.
    """

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class SweepConfigError(RaysweepError):
    """A sweep config that W&B's engine would reject, or raysweep cannot run.

    Carries every violation found, not just the first, so a user fixes the file
    in one pass.
    """

    def __init__(self, violations: list[Violation], source: str | None = None) -> None:
        self.violations = list(violations)
        self.source = source
        super().__init__(self._render())

    def _render(self) -> str:
        where = f"{self.source}: " if self.source else ""
        lines = [f"{where}invalid sweep config ({len(self.violations)} problem"
                 f"{'s' if len(self.violations) != 1 else ''}):"]
        lines += [f"  - {v}" for v in self.violations]
        return "\n".join(lines)


class ProgramError(RaysweepError):
    """The sweep's `program`/`command` cannot be launched as written."""


class RunLogError(RaysweepError):
    """The run log cannot be written or read (full disk, read-only, not a run log)."""


class ClusterError(RaysweepError):
    """The Ray cluster cannot be reached or cannot fit what a trial asks for."""


def moved_private_name(library: str, installed: str, pinned: str, module: str, error: ImportError) -> ImportError:
    """What to raise when `library` no longer has a private name raysweep imports in `module`.

    raysweep keeps each library's private names in one module
    (`raysweep.search._ray_internals`, `raysweep.search._optuna_internals`) and pins the
    release they were read from, so a newer release fails at import, naming the way out.
    """
    return ImportError(f"{library} {installed} moved a private name raysweep uses ({error}); raysweep is "
                       f"tested with {pinned}: install that, or update {module}")
