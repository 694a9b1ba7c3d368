"""Every private name of Optuna that raysweep uses, in one place: its GP's posterior mean.

raysweep's bayes lets Optuna's `GPSampler` propose with runs still in flight
by telling it each running run ended at the value the GP expects of it (see
`raysweep.search.gp.OptunaBayes`).  Optuna has no public call for that
expectation, so it is computed here with the GP code `GPSampler` itself uses
(`optuna._gp`: the same search-space normalisation, Matern-5/2 kernel with
one length scale per parameter, prior and noise floor).  It holds because
raysweep pins ``optuna==5.1.0``; if a newer Optuna moves one of these names,
importing this module (or ``tests/search/test_optuna_internals.py``) says
which one, instead of a sweep failing half-way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import optuna
import torch
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial

from raysweep.errors import moved_private_name

#: The Optuna release these names were read from (``pyproject.toml`` pins it).
TESTED_OPTUNA = "5.1.0"

try:
    from optuna._gp import gp as optuna_gp, prior as optuna_prior
    from optuna._gp.search_space import SearchSpace
except ImportError as error:  # pragma: no cover - only with another Optuna
    raise moved_private_name("Optuna", optuna.__version__, f"optuna=={TESTED_OPTUNA}",
                             "raysweep/search/_optuna_internals.py", error) from error


def posterior_mean(space: Mapping[str, BaseDistribution], ended: Sequence[FrozenTrial],
                   running: Sequence[FrozenTrial]) -> list[float]:
    """The GP's expected value of each `running` trial, fitted as `GPSampler` fits it to the `ended` ones.

    Values are the trials' own (the study's direction does not matter to a
    mean); `ended` needs at least one trial with a finite value.
    """
    normalised = SearchSpace(dict(space))
    values = np.array([trial.value for trial in ended], dtype=float)
    mean, std = float(values.mean()), max(float(values.std()), 1e-12)
    gpr = optuna_gp.fit_kernel_params(
        X=normalised.get_normalized_params(list(ended)), Y=(values - mean) / std,
        is_categorical=normalised.is_categorical, log_prior=optuna_prior.default_log_prior,
        minimum_noise=optuna_prior.DEFAULT_MINIMUM_NOISE_VAR, deterministic_objective=False)
    at = torch.from_numpy(normalised.get_normalized_params(list(running), [trial.params for trial in running]))
    with torch.no_grad():
        expected, _ = gpr.posterior(at)
    return [float(value) * std + mean for value in expected.numpy()]
