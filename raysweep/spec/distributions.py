"""Every W&B sweep distribution as a small value object with W&B's exact sampling.

W&B's engine (`sweeps` 0.3.0, `sweeps/params.py`) samples a parameter as
``ppf(u)`` with ``u ~ U[0, 1)``. Each class here reproduces that inverse CDF
formula for formula, including its quirks (``q`` rounds half-to-even and may
pass ``max``; an ``int`` q gives ints while the default ``1.0`` gives floats;
``inv_log_uniform_values`` samples like ``log_uniform_values``), so that a
sweep file means the same thing under raysweep as under W&B. The Ray domains in
`raysweep.search.space` and the searchers call these objects instead of
re-deriving formulas.

Each kind is a named class: a formula class (``_UniformFormula``...) gives its
fields and raw values, an output step (`_Unquantized` floats or `_Quantized`
``q`` rounding) turns them into W&B's values.  scipy is imported on the first
sample, not with this module: loading a sweep file (``raysweep validate``)
never samples, and scipy.stats alone takes most of a second to import.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from raysweep.values import finite_number

# Smallest u handed to a ppf by `sample`: u == 0 would map unbounded
# distributions to -inf (W&B shares the flaw, with probability 2**-53).
_SMALLEST_U = np.nextafter(0.0, 1.0)


def _require_number(field: str, value: Any) -> None:
    """Reject bools, strings and non-finite numbers, which W&B rejects or samples as NaN."""
    if not isinstance(value, (int, float)) or finite_number(value) is None:
        raise ValueError(f"{field}: must be a finite number, got {value!r}; write e.g. 0.5")


def _require_positive(field: str, value: Any, why: str) -> None:
    _require_number(field, value)
    if value <= 0:
        raise ValueError(f"{field}: must be greater than 0, got {value!r}; {why}")


@dataclass(frozen=True)
class Distribution(ABC):
    """A W&B parameter distribution: the `distribution:` of one sweep parameter."""

    name: ClassVar[str]
    continuous: ClassVar[bool] = False  # GP bayes can search it directly

    def __post_init__(self) -> None:  # noqa: B027 - hook that subclasses extend
        """Validate fields; subclasses raise ValueError("<field>: ...")."""

    @abstractmethod
    def _ppf(self, u: np.ndarray) -> list[Any]:
        """W&B's inverse CDF on a 1-d float array, as plain Python values."""

    def ppf(self, u: Any) -> list[Any]:
        """W&B's value at each quantile in ``u`` (scalar or 1-d, inside [0, 1])."""
        u = np.atleast_1d(np.asarray(u, dtype=float))
        if np.any((u < 0.0) | (u > 1.0)):
            raise ValueError("u: quantiles must lie in [0, 1]")
        return self._ppf(u)

    def sample(self, rng: Any, size: int | None = None) -> Any:
        """One value (``size=None``) or a list of ``size`` values: ``ppf(rng.uniform())``.

        ``rng`` is a numpy Generator/RandomState or Ray's random_state wrapper:
        only its ``uniform(low, high, size)`` is used.
        """
        u = np.atleast_1d(rng.uniform(0.0, 1.0, size=1 if size is None else size))
        values = self.ppf(np.maximum(u, _SMALLEST_U))
        return values[0] if size is None else values

    def support(self) -> tuple[float, float]:
        """Smallest and largest value it can yield (may be infinite); only numeric kinds have one."""
        raise TypeError(f"{self.name} has no numeric range")

    def grid_values(self) -> list[Any]:
        """The values W&B's grid search walks; W&B's grid rejects every other kind."""
        raise TypeError(
            f"{self.name} cannot be searched by grid; grid needs constant, categorical "
            "(without probabilities), int_uniform or q_uniform"
        )


def _uniform_index(u: np.ndarray, low: int, high: int) -> np.ndarray:
    """``scipy.stats.randint.ppf(u, low, high)`` as W&B calls it, clipped to [low, high).

    scipy maps u == 0 to ``low - 1`` (W&B then picks the *last* categorical
    value); clipping only changes that measure-zero point.
    """
    from scipy import stats  # on first sampling, see the module docstring

    return np.clip(stats.randint.ppf(u, low, high), low, high - 1).astype(int)


@dataclass(frozen=True)
class Constant(Distribution):
    """`value: x` — always x, whatever its type."""

    value: Any
    name: ClassVar[str] = "constant"

    def _ppf(self, u: np.ndarray) -> list[Any]:
        return [copy.deepcopy(self.value) for _ in u]

    def grid_values(self) -> list[Any]:
        return [copy.deepcopy(self.value)]


@dataclass(frozen=True)
class Categorical(Distribution):
    """`values: [...]`, optionally weighted by `probabilities` (categorical_w_probabilities)."""

    values: tuple[Any, ...]
    probabilities: tuple[float, ...] | None = None
    name: ClassVar[str] = "categorical"

    def __post_init__(self) -> None:
        if not isinstance(self.values, (list, tuple)) or not self.values:
            raise ValueError(f"values: must be a non-empty list, got {self.values!r}; write e.g. [adam, sgd]")
        object.__setattr__(self, "values", tuple(self.values))
        if self.probabilities is not None:
            object.__setattr__(self, "probabilities", self._checked_probabilities())

    def _checked_probabilities(self) -> tuple[float, ...]:
        probs = self.probabilities
        if not isinstance(probs, (list, tuple)):
            raise ValueError(f"probabilities: must be a list of numbers, got {probs!r}")
        for p in probs:
            _require_number("probabilities", p)
            if p < 0:
                raise ValueError(f"probabilities: must all be >= 0, got {p!r}")
        if len(probs) != len(self.values):
            raise ValueError(
                f"probabilities: has {len(probs)} entries but values has {len(self.values)}; give one per value"
            )
        if not np.isclose(sum(probs), 1.0):
            raise ValueError(f"probabilities: must sum to 1, got {sum(probs)!r}; rescale them")
        return tuple(float(p) for p in probs)

    def _ppf(self, u: np.ndarray) -> list[Any]:
        if self.probabilities is None:
            indices = _uniform_index(u, 0, len(self.values))
        else:  # W&B's scalar path: first index whose cumulative probability exceeds u
            cdf = np.cumsum(self.probabilities)
            indices = np.argmin(u[:, None] >= cdf[None, :], axis=1)
        return [copy.deepcopy(self.values[i]) for i in indices.tolist()]

    def grid_values(self) -> list[Any]:
        if self.probabilities is not None:
            raise TypeError("categorical with probabilities cannot be searched by grid; drop `probabilities`")
        return [copy.deepcopy(v) for v in self.values]


@dataclass(frozen=True)
class _MinMax(Distribution):
    """Shared `min`/`max` fields; W&B requires min < max for every such kind."""

    min: float
    max: float

    def __post_init__(self) -> None:
        _require_number("min", self.min)
        _require_number("max", self.max)
        if self.min >= self.max:
            raise ValueError(f"max: must be greater than min ({self.min!r}), got {self.max!r}; swap them")


@dataclass(frozen=True)
class _Quantized(Distribution):
    """Output step of the q_* kinds: W&B's ``np.round(x / q) * q``, ints when q is an int."""

    q: float = 1.0

    if TYPE_CHECKING:  # the formula class, after this one in each kind's bases, defines it
        def _raw(self, u: np.ndarray) -> np.ndarray: ...

    def __post_init__(self) -> None:
        super().__post_init__()
        _require_positive("q", self.q, "write e.g. q: 1 for integers or q: 0.1")

    def _rounded(self, u: np.ndarray) -> np.ndarray:
        return np.round(self._raw(u) / self.q) * self.q

    def _ppf(self, u: np.ndarray) -> list[Any]:
        rounded = self._rounded(u)
        return (rounded.astype(int) if isinstance(self.q, int) else rounded).tolist()

    def support(self) -> tuple[float, float]:
        """Smallest and largest value it can yield (rounding may pass `max`); may be infinite."""
        low, high = self._rounded(np.array([0.0, 1.0])).tolist()
        return low, high


class _Unquantized(Distribution):
    """Output step of the float kinds: the formula's values as Python floats."""

    continuous = True

    if TYPE_CHECKING:  # the formula class, after this one in each kind's bases, defines it
        def _raw(self, u: np.ndarray) -> np.ndarray: ...

    def _ppf(self, u: np.ndarray) -> list[Any]:
        return np.asarray(self._raw(u), dtype=np.float64).tolist()

    def support(self) -> tuple[float, float]:
        """Smallest and largest value it can yield; may be infinite."""
        low, high = self._ppf(np.array([0.0, 1.0]))
        return low, high


@dataclass(frozen=True)
class IntUniform(_MinMax):
    """Integers min..max, max included (W&B's `randint.ppf(u, min, max + 1)`)."""

    min: int
    max: int
    name: ClassVar[str] = "int_uniform"

    def __post_init__(self) -> None:
        for field, value in (("min", self.min), ("max", self.max)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{field}: int_uniform needs an integer, got {value!r}; "
                                 "write an integer or use distribution: uniform")
        super().__post_init__()

    def _ppf(self, u: np.ndarray) -> list[Any]:
        return _uniform_index(u, self.min, self.max + 1).tolist()

    def support(self) -> tuple[float, float]:
        """Smallest and largest value it can yield, both included."""
        return self.min, self.max

    def grid_values(self) -> list[Any]:
        return list(range(self.min, self.max + 1))


class _UniformFormula(_MinMax):
    def _raw(self, u: np.ndarray) -> np.ndarray:
        return u * (self.max - self.min) + self.min


class _ExpFormula(_MinMax):
    """log_uniform (W&B's deprecated v1 kinds): `min`/`max` are natural-log exponents."""

    def _raw(self, u: np.ndarray) -> np.ndarray:
        return np.exp(u * (self.max - self.min) + self.min)


class _LogValuesFormula(_MinMax):
    """*_values kinds: `min`/`max` are the values themselves, so min must be > 0."""

    def __post_init__(self) -> None:
        super().__post_init__()
        _require_positive("min", self.min, f"{self.name} takes values, not exponents; write e.g. 1.0e-5")

    def _raw(self, u: np.ndarray) -> np.ndarray:
        low, high = np.log(self.min), np.log(self.max)
        return np.exp(u * (high - low) + low)


def _inv_log_uniform(u: np.ndarray, low: float, high: float) -> np.ndarray:
    """W&B's `inv_log_uniform_v1_ppf`: ``exp(-U(low, high)(1 - u))``."""
    return np.exp(-((1 - u) * (high - low) + low))


class _InvExpFormula(_MinMax):
    def _raw(self, u: np.ndarray) -> np.ndarray:
        return _inv_log_uniform(u, self.min, self.max)


class _InvLogValuesFormula(_LogValuesFormula):
    def _raw(self, u: np.ndarray) -> np.ndarray:
        return _inv_log_uniform(u, -np.log(self.max), -np.log(self.min))


@dataclass(frozen=True)
class _Gaussian(Distribution):
    """`mu`/`sigma` kinds. sigma 0 passes W&B's schema but samples NaN, so it is refused."""

    mu: float = 0.0
    sigma: float = 1.0

    def __post_init__(self) -> None:
        _require_number("mu", self.mu)
        _require_positive("sigma", self.sigma, "for a fixed value write `value:` instead")


class _NormalFormula(_Gaussian):
    def _raw(self, u: np.ndarray) -> np.ndarray:
        from scipy import stats  # on first sampling, see the module docstring

        return stats.norm.ppf(u, loc=self.mu, scale=self.sigma)


class _LogNormalFormula(_Gaussian):
    def _raw(self, u: np.ndarray) -> np.ndarray:
        from scipy import stats  # on first sampling, see the module docstring

        return stats.lognorm.ppf(u, s=self.sigma, scale=np.exp(self.mu))


@dataclass(frozen=True)
class _BetaFormula(Distribution):
    """`a`/`b` kinds. a or b of 0 pass W&B's schema but sample NaN, so they are refused."""

    a: float = 1.0
    b: float = 1.0

    def __post_init__(self) -> None:
        _require_positive("a", self.a, "write e.g. a: 2")
        _require_positive("b", self.b, "write e.g. b: 5")

    def _raw(self, u: np.ndarray) -> np.ndarray:
        from scipy import stats  # on first sampling, see the module docstring

        return stats.beta.ppf(u, a=self.a, b=self.b)


# Each W&B kind: its formula class, then its output step (floats, or the q_* rounding).

@dataclass(frozen=True)
class Uniform(_Unquantized, _UniformFormula):
    """Floats uniform on [min, max]."""

    name: ClassVar[str] = "uniform"


@dataclass(frozen=True)
class QUniform(_Quantized, _UniformFormula):
    """``round(uniform(min, max) / q) * q``: edge values get half weight and may pass max."""

    name: ClassVar[str] = "q_uniform"

    def grid_values(self) -> list[Any]:
        """W&B's grid for q_uniform: ``np.arange(min, max, q)``, which leaves out max."""
        return np.arange(self.min, self.max, self.q).tolist()


@dataclass(frozen=True)
class LogUniform(_Unquantized, _ExpFormula):
    """``exp(uniform(min, max))``: bounds are exponents."""

    name: ClassVar[str] = "log_uniform"


@dataclass(frozen=True)
class QLogUniform(_Quantized, _ExpFormula):
    """``round(exp(uniform(min, max)) / q) * q``."""

    name: ClassVar[str] = "q_log_uniform"


@dataclass(frozen=True)
class LogUniformValues(_Unquantized, _LogValuesFormula):
    """Log-uniform on [min, max]."""

    name: ClassVar[str] = "log_uniform_values"


@dataclass(frozen=True)
class QLogUniformValues(_Quantized, _LogValuesFormula):
    """``round(log_uniform_values / q) * q``; 0 when q > min is possible."""

    name: ClassVar[str] = "q_log_uniform_values"


@dataclass(frozen=True)
class InvLogUniform(_Unquantized, _InvExpFormula):
    """Log-uniform on [e^-max, e^-min]: what W&B's engine samples, despite the name."""

    name: ClassVar[str] = "inv_log_uniform"


@dataclass(frozen=True)
class InvLogUniformValues(_Unquantized, _InvLogValuesFormula):
    """Log-uniform on [min, max]: W&B's engine samples it exactly like log_uniform_values."""

    name: ClassVar[str] = "inv_log_uniform_values"


@dataclass(frozen=True)
class Normal(_Unquantized, _NormalFormula):
    """``norm.ppf(u, mu, sigma)``."""

    name: ClassVar[str] = "normal"


@dataclass(frozen=True)
class QNormal(_Quantized, _NormalFormula):
    """``round(normal(mu, sigma) / q) * q``, unbounded."""

    name: ClassVar[str] = "q_normal"


@dataclass(frozen=True)
class LogNormal(_Unquantized, _LogNormalFormula):
    """``exp(normal(mu, sigma))``."""

    name: ClassVar[str] = "log_normal"


@dataclass(frozen=True)
class QLogNormal(_Quantized, _LogNormalFormula):
    """``round(exp(normal(mu, sigma)) / q) * q``."""

    name: ClassVar[str] = "q_log_normal"


@dataclass(frozen=True)
class Beta(_Unquantized, _BetaFormula):
    """``beta.ppf(u, a, b)`` on [0, 1]."""

    name: ClassVar[str] = "beta"


@dataclass(frozen=True)
class QBeta(_Quantized, _BetaFormula):
    """``round(beta(a, b) / q) * q``."""

    name: ClassVar[str] = "q_beta"


def describe_distribution(dist: Distribution) -> str:
    """What W&B samples for `dist`, in words (``raysweep show`` prints it)."""
    q = getattr(dist, "q", None)
    if q is None:
        return _shape(dist)
    kind = "ints" if isinstance(q, int) else "floats"
    return f"{_shape(dist)}, rounded half-to-even to multiples of q={q!r} ({kind}; may pass the bounds)"


def _shape(dist: Distribution) -> str:
    if isinstance(dist, Constant):
        return f"constant {dist.value!r}"
    if isinstance(dist, Categorical):
        if dist.probabilities is None:
            return f"categorical, uniform over {list(dist.values)!r}"
        return f"categorical over {list(dist.values)!r} with probabilities {list(dist.probabilities)!r}"
    if isinstance(dist, IntUniform):
        return f"int_uniform: integers {dist.min}..{dist.max}, both included"
    return f"{dist.name}: {_SHAPES[dist.name].format(d=dist)}"


_SHAPES: dict[str, str] = {
    "uniform": "uniform on [{d.min!r}, {d.max!r}]",
    "q_uniform": "uniform on [{d.min!r}, {d.max!r}]",
    "log_uniform": "log-uniform on [e^{d.min!r}, e^{d.max!r}] (min/max are natural-log exponents)",
    "q_log_uniform": "log-uniform on [e^{d.min!r}, e^{d.max!r}] (min/max are natural-log exponents)",
    "log_uniform_values": "log-uniform on [{d.min!r}, {d.max!r}]",
    "q_log_uniform_values": "log-uniform on [{d.min!r}, {d.max!r}]",
    "inv_log_uniform": "log-uniform on [e^-{d.max!r}, e^-{d.min!r}] (W&B's engine samples it so)",
    "inv_log_uniform_values": "log-uniform on [{d.min!r}, {d.max!r}], exactly like log_uniform_values "
    "(W&B's engine samples it so, not as 1/x)",
    "normal": "normal(mu={d.mu!r}, sigma={d.sigma!r})",
    "q_normal": "normal(mu={d.mu!r}, sigma={d.sigma!r})",
    "log_normal": "exp(normal(mu={d.mu!r}, sigma={d.sigma!r}))",
    "q_log_normal": "exp(normal(mu={d.mu!r}, sigma={d.sigma!r}))",
    "beta": "beta(a={d.a!r}, b={d.b!r}) on [0, 1]",
    "q_beta": "beta(a={d.a!r}, b={d.b!r}) on [0, 1]",
}


DISTRIBUTIONS: dict[str, type[Distribution]] = {
    cls.name: cls
    for cls in (Constant, Categorical, IntUniform, Uniform, QUniform, LogUniform, LogUniformValues,
                QLogUniform, QLogUniformValues, InvLogUniform, InvLogUniformValues, Normal, QNormal,
                LogNormal, QLogNormal, Beta, QBeta)
}
DISTRIBUTIONS["categorical_w_probabilities"] = Categorical
