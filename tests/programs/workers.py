"""Sweep scripts that start other processes: ``--mode`` picks what they do (see test_program.py)."""

import argparse
import multiprocessing
import os
import sys

import wandb


def blocked(queue):
    queue.get()  # never answered: the parent raises first


def raise_with_blocked_worker():
    queue = multiprocessing.Queue()
    worker = multiprocessing.Process(target=blocked, args=(queue,))
    worker.start()
    run = wandb.init()
    run.log({"loss": 1.0})
    run.log({"loss": 0.5}, commit=False)
    raise RuntimeError("the script fails while its worker waits")


def fork_without_init():
    run = wandb.init()
    run.log({"loss": 1.0})
    run.log({"loss": 0.5}, commit=False)
    pid = os.fork()
    if pid == 0:  # a child that logs on the run it inherited and exits through atexit
        wandb.log({"child": 1})
        wandb.summary["child"] = 1
        sys.exit(0)
    os.waitpid(pid, 0)
    run.log({"loss": 0.25})
    run.finish()


def spawned_fold(fold):
    run = wandb.init(name=f"spawned-{fold}", config={"fold": fold})
    run.log({"val_accuracy": fold + 1.0})
    run.finish()


def spawned_folds():
    """Workers started with the spawn method: a fresh interpreter that imports wandb again."""
    sweep_run = wandb.init()
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=spawned_fold, args=(fold,)) for fold in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    sweep_run.log({"val_accuracy": 1.5})
    sweep_run.finish()


def sequential_folds():
    sweep_run = wandb.init()
    agent_run_id = sweep_run.id
    sweep_run.finish()
    for key in [k for k in os.environ if k.startswith("WANDB_")]:
        del os.environ[key]
    values = []
    for fold in range(2):
        run = wandb.init(name=f"fold-{fold}", group="g", job_type="cv", config={"fold": fold}, reinit=True)
        run.log({"val_accuracy": fold + 1.0})
        run.finish()
        values.append(fold + 1.0)
    sweep_run = wandb.init(id=agent_run_id, resume="must")
    sweep_run.log({"val_accuracy": sum(values) / len(values)})
    sweep_run.finish()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode")
    globals()[parser.parse_known_args()[0].mode]()
