"""`--verbose` on a cluster of several nodes, in a process of its own: ``python tests/verbose_scenario.py OUT``.

A `ray.cluster_utils.Cluster` whose head has no CPU, so every run lands on a
worker node (another raylet, another address) and its program's lines travel
from there.  The sweep of ``tests/programs/chatty.py`` runs with
``verbose=True``; the driver's stdout is the test's to read, and the last
line is the run log's path, as JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

PROGRAM = Path(__file__).resolve().parent / "programs" / "chatty.py"
WORKERS = ("127.0.0.4", "127.0.0.5")


def scenario(out: Path) -> Path:
    import ray
    from ray.cluster_utils import Cluster

    import raysweep

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    for ip in WORKERS:
        cluster.add_node(num_cpus=1, node_ip_address=ip)
    spec = {"program": str(PROGRAM), "method": "grid", "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"lr": {"values": [0.5, 1.0, 2.0, 4.0]}, "epochs": {"value": 3}}}
    try:
        result = raysweep.run(spec, address=cluster.address, out=out, verbose=True, progress=False)
    finally:
        ray.shutdown()
        cluster.shutdown()
    return result.path


def main(out: str) -> None:
    # A Cluster writes its address where any `ray.init()` on the machine would find it: keep to a directory
    # of its own (short, for its sockets).
    ray_tmp = tempfile.mkdtemp(prefix="rsv", dir="/tmp")
    os.environ["RAY_TMPDIR"] = ray_tmp
    try:
        path = scenario(Path(out))
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
    print(json.dumps({"log": str(path)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
