"""W&B's cross-validation sweep example, in its shape: fold workers started before the sweep run's init.

Each worker waits on a queue, removes the WANDB_* variables the agent set, and
starts a run of its own (group, job_type, name, config) for its fold; the parent
logs the mean of the folds.  Also uses the run API W&B's examples call.
"""

import collections
import multiprocessing
import os
import sys
from pathlib import Path

import wandb

FOLDS = 5
Job = collections.namedtuple("Job", ("fold", "sweep_id", "sweep_run_name", "config"))


def reset_wandb_env():
    keep = {"WANDB_PROJECT", "WANDB_ENTITY", "WANDB_API_KEY"}
    for key in [k for k in os.environ if k.startswith("WANDB_") and k not in keep]:
        del os.environ[key]


def fold_value(config, fold):
    return round(config["lr"] * 10 + fold / 100, 6)


def record_pid(kind):
    """For the test: which processes ran (``--pid_dir=DIR`` on the command line)."""
    for arg in sys.argv[1:]:
        if arg.startswith("--pid_dir="):
            Path(arg.split("=", 1)[1], f"{kind}-{os.getpid()}").touch()


def train(jobs, results):
    record_pid("worker")
    job = jobs.get()
    reset_wandb_env()
    run = wandb.init(group=job.sweep_id, job_type=job.sweep_run_name, name=f"{job.sweep_run_name}-{job.fold}",
                     config=job.config)
    value = fold_value(job.config, job.fold)
    run.log({"val_accuracy": value, "fold": job.fold})
    wandb.join()
    results.put(value)


def main():
    record_pid("main")
    results = multiprocessing.Queue()
    workers = []
    for _ in range(FOLDS):
        jobs = multiprocessing.Queue()
        process = multiprocessing.Process(target=train, args=(jobs, results))
        process.start()
        workers.append((jobs, process))

    sweep_run = wandb.init()
    sweep_id = sweep_run.sweep_id or "unknown"
    print("sweep url:", sweep_run.get_sweep_url(), "project url:", sweep_run.get_project_url(),
          "url:", sweep_run.get_url(), sweep_run.url, sweep_run.path, sweep_run.project_name())
    sweep_run.notes = f"{sweep_run.get_project_url()}/groups/{sweep_id}"
    sweep_run.tags = ["cv"]
    sweep_run.name = sweep_run.name or "unknown"
    sweep_run.save()
    assert not sweep_run.resumed and sweep_run.start_time > 0 and sweep_run.settings is not None
    values = []
    for fold, (jobs, process) in enumerate(workers):
        jobs.put(Job(fold, sweep_id, sweep_run.name, dict(sweep_run.config)))
        values.append(results.get())
        process.join()
    sweep_run.log({"val_accuracy": sum(values) / len(values)})
    wandb.join()


if __name__ == "__main__":
    main()
