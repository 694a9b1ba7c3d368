"""The base of raysweep's own searchers: a Ray `Searcher` whose whole state is `get_state()`.

Grid, random and the GP searcher all keep their state in one small dict, so
saving it for `Tuner.restore` is the same for all of them and lives here.
"""

from __future__ import annotations

from ray import cloudpickle
from ray.tune.search import Searcher


class StatefulSearcher(Searcher):
    """A Searcher whose whole state is its `get_state()`.

    `save`/`restore` write that state to the checkpoint file Ray's
    SearchGenerator asks for, which is what `Tuner.restore` reads back.
    """

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Searchers that do not learn from results ignore them."""

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            cloudpickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.set_state(cloudpickle.load(f))
