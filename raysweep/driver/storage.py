"""Where Ray keeps a sweep's experiment directory (trial directories, Ray's own state).

By default Ray's experiment lives inside the sweep's run log; with
``--storage`` (a path, ``s3://`` or ``gs://``) it lives in storage that
outlives the head node.  Each driver that adds runs to a sweep (an agent, a
resume) gets an experiment of its own: ``ray``, ``ray-2``...  The run log,
not Ray's state, is what a later driver starts from.
"""

from __future__ import annotations

from pathlib import Path

from raysweep.errors import ClusterError

#: Name of Ray's experiment directory inside a sweep's run log.
EXPERIMENT_NAME = "ray"


def ray_storage(storage: str | None, log_path: Path) -> str:
    """Where Ray keeps a sweep's experiment state: its run log, or ``<storage>/<run-log name>``.

    Shared storage (``s3://``, ``gs://``, a network filesystem) outlives the
    head node, with Ray's trial directories in it.  URIs pass through as given;
    a path is made absolute, since Ray reads a relative one as a URI and fails.
    """
    if storage is None:
        return str(log_path)
    if "://" in storage:
        return f"{storage.rstrip('/')}/{log_path.name}"
    return str(Path(storage).expanduser().resolve() / log_path.name)


def experiment_location(log_path: Path, storage: str | None) -> tuple[str, str]:
    """Ray's storage path and a new experiment name in it: ``ray``, then ``ray-2``... for agents."""
    import pyarrow.fs

    where = ray_storage(storage, log_path)
    try:
        fs, root = pyarrow.fs.FileSystem.from_uri(where)
        name, index = EXPERIMENT_NAME, 1
        while fs.get_file_info(f"{root}/{name}").type != pyarrow.fs.FileType.NotFound:
            index += 1
            name = f"{EXPERIMENT_NAME}-{index}"
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise ClusterError(f"--storage {storage}: cannot use {where} for Ray's experiment state ({exc}); "
                           "give a writable path, s3://bucket/prefix or gs://bucket/prefix") from exc
    return where, name
