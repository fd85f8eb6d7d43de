"""Voxel-wise polynomial regression from the inputs to the target (degree 1: linear, degree 2: poly2)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations_with_replacement
from typing import Any, ClassVar

import numpy as np

from cmsbench.baselines.base import FitContext, Method, MethodCard
from cmsbench.baselines.classical._common import foreground, sample_voxels, state_float
from cmsbench.errors import MethodError
from cmsbench.tasks.volume import Case, Volume


def polynomial_terms(n_inputs: int, degree: int) -> list[tuple[int, ...]]:
    """Monomials as tuples of input indices: ``()`` is the intercept, ``(0, 1)`` the product x0*x1."""
    terms: list[tuple[int, ...]] = [()]
    for d in range(1, degree + 1):
        terms.extend(combinations_with_replacement(range(n_inputs), d))
    return terms


class _PolynomialRegression(Method):
    """Least squares on monomials of the standardised inputs, fitted on foreground train voxels.

    Inputs are standardised with the mean and standard deviation of the sample (this only improves the
    conditioning; the fitted function is the same). Voxels where every input is zero get the median
    training target over such background voxels (0 for MR, about -1000 HU for CT). With ``clip`` the
    inputs are clipped to the range seen in training before the polynomial is evaluated, so that a
    quadratic cannot explode on intensities it never saw.
    """

    degree: ClassVar[int] = 1
    defaults = {"max_voxels": 200_000, "clip": True}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.coef = np.zeros(0)
        self.mean = np.zeros(0)
        self.scale = np.zeros(0)
        self.x_min = np.zeros(0)
        self.x_max = np.zeros(0)
        self.background: float | None = None

    @property
    def terms(self) -> list[tuple[int, ...]]:
        return polynomial_terms(len(self.inputs), self.degree)

    def term_names(self) -> list[str]:
        """Human names of the fitted terms (``"1"``, ``"t1"``, ``"t1*t2"``) in the order of ``coef``."""
        return ["*".join(self.inputs[i] for i in t) or "1" for t in self.terms]

    def _design(self, z: np.ndarray) -> np.ndarray:
        """(N, T) design matrix from standardised inputs ``z`` (N, C)."""
        cols = [np.prod(z[:, list(t)], axis=1) if t else np.ones(z.shape[0]) for t in self.terms]
        return np.stack(cols, axis=1)

    def _fit(self, train: Sequence[Case], val: Sequence[Case], ctx: FitContext) -> None:
        sample = sample_voxels(train, self.inputs, max_voxels=int(self.options["max_voxels"]), seed=ctx.seed,
                               method=self.card.name)
        n_terms = len(self.terms)
        if sample.x.shape[0] < n_terms:
            raise MethodError(
                f"method {self.card.name!r}: {sample.x.shape[0]} foreground training voxels cannot determine "
                f"{n_terms} coefficients; give more or larger training cases"
            )
        self.mean = sample.x.mean(axis=0)
        scale = sample.x.std(axis=0)
        self.scale = np.where(scale > 0, scale, 1.0)
        self.x_min = sample.x.min(axis=0)
        self.x_max = sample.x.max(axis=0)
        design = self._design((sample.x - self.mean) / self.scale)
        self.coef, *_ = np.linalg.lstsq(design, sample.y, rcond=None)
        self.background = sample.background

    def _evaluate(self, x: np.ndarray) -> np.ndarray:
        """Model prediction for raw inputs ``x`` of shape (C, N), in float64."""
        if self.options["clip"]:
            x = np.clip(x, self.x_min[:, None], self.x_max[:, None])
        z = (x - self.mean[:, None]) / self.scale[:, None]
        out = np.zeros(z.shape[1], dtype=np.float64)
        for c, t in zip(self.coef, self.terms, strict=True):
            if not t:
                out += c
                continue
            term = z[t[0]].copy()
            for i in t[1:]:
                term *= z[i]
            out += c * term
        return out

    def predict(self, inputs: Mapping[str, Volume]) -> Volume:
        self.require_fitted()
        stack, ref = self.stack_inputs(inputs)
        fg = foreground(stack)
        out = np.empty(stack.shape[1:], dtype=np.float64)
        if self.background is None:  # no background voxels in training: the model covers every voxel
            fg[...] = True
        else:
            out[~fg] = self.background
        out[fg] = self._evaluate(stack[:, fg].astype(np.float64))
        return self.output(out, ref)

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {"coef": self.coef, "mean": self.mean, "scale": self.scale, "x_min": self.x_min,
                  "x_max": self.x_max}
        return arrays, {"background": self.background, "degree": self.degree, "terms": self.term_names()}

    def set_state(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        for key in ("coef", "mean", "scale", "x_min", "x_max"):
            setattr(self, key, np.asarray(arrays[key], dtype=np.float64))
        self.background = state_float(meta, "background")


class LinearRegressionMethod(_PolynomialRegression):
    """Target = intercept + sum of weights x inputs, by least squares on foreground train voxels."""

    degree = 1
    card = MethodCard(
        name="linear",
        version="1.0",
        varying_target="per_target",
        summary=(
            "Voxel-wise linear regression (with intercept) from the inputs to the target, least squares "
            "(numpy lstsq, float64) on a seeded subsample of up to max_voxels foreground voxels of the train "
            "split (foreground: any input non-zero). Background voxels (all inputs zero) get the median "
            "training target over background. Inputs clipped to the training range when clip=True."
        ),
        needs_training=True,
    )


class Poly2RegressionMethod(_PolynomialRegression):
    """Quadratic regression: intercept, inputs, their squares and pairwise products."""

    degree = 2
    card = MethodCard(
        name="poly2",
        version="1.0",
        varying_target="per_target",
        summary=(
            "Voxel-wise quadratic regression from the inputs to the target: intercept, linear terms, squares "
            "and cross terms of the standardised inputs, least squares (numpy lstsq, float64) on a seeded "
            "subsample of up to max_voxels foreground voxels of the train split. Background voxels (all "
            "inputs zero) get the median training target over background. Inputs clipped to the training "
            "range when clip=True."
        ),
        needs_training=True,
    )
