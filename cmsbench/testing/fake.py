"""Fake tasks, in-memory cases and deliberately simple methods, for tests and for plugin authors.

* ``fake_synthesis``: inputs ``a``, ``b`` -> target ``c``, a smooth non-linear function of the inputs
  plus a "lesion" that shows more strongly in the target than in the inputs.
* ``fake_denoising``: input ``x_low`` (``x`` plus Gaussian noise inside the body) -> target ``x``, a
  piecewise-smooth phantom; the stand-in for ``ldpet``/``ldct``.

Cases are built in memory in milliseconds: a (16, 16, 6) grid by default with an anisotropic,
non-identity affine (so a method that drops the geometry is caught), zero background outside an
ellipsoidal body, masks ``global`` (every voxel), ``body`` (the foreground) and ``lesion``.

The fake methods are references for plugin authors, each a few lines over :class:`Method`:
:class:`FakeIdentity` (copy the first input), :class:`FakeOracle` (returns the target of any case it
was fitted on), :class:`FakeNoise` (first input plus seeded noise).
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from cmsbench.baselines.base import FitContext, Method, MethodCard
from cmsbench.errors import UnknownNameError
from cmsbench.tasks.spec import DataRange, DatasetInfo, Normalisation, SplitPolicy, TaskSpec
from cmsbench.tasks.volume import Case, Volume

FAKE_SHAPE = (16, 16, 6)
FAKE_AFFINE = np.array(
    [[1.2, 0.0, 0.0, -9.0], [0.0, 1.1, 0.0, -8.5], [0.0, 0.0, 2.5, -6.0], [0.0, 0.0, 0.0, 1.0]]
)
_FAKE_DATASET = DatasetInfo(
    "cmsbench fake data",
    "in memory: cmsbench.testing.fake.make_fake_cases(n, seed)",
    citation="",
    licence="Apache-2.0",
)

FAKE_SYNTHESIS = TaskSpec(
    name="fake_synthesis",
    version="1.0",
    description=(
        "A tiny in-memory task for tests and the conformance suite: synthesise c from a and b, a smooth "
        "non-linear function of the inputs plus a lesion that is brighter in c. Arbitrary units, zero "
        "background outside an ellipsoidal body."
    ),
    dataset=_FAKE_DATASET,
    adapter="fake",
    inputs=("a", "b"),
    target="c",
    units="a.u.",
    normalisation=Normalisation("none"),
    regions=("global", "body"),
    metrics=("psnr", "mae"),
    main_metric="psnr",
    data_range=DataRange("fixed", value=4.0),
    split=SplitPolicy("first_n", counts=(3, 1, 1)),
)

FAKE_DENOISING = replace(
    FAKE_SYNTHESIS,
    name="fake_denoising",
    description=(
        "A tiny in-memory denoising task (the stand-in for ldpet/ldct): restore x from x_low, x plus "
        "Gaussian noise inside the body. Arbitrary units, zero background."
    ),
    inputs=("x_low",),
    target="x",
)

FAKE_TASKS: dict[str, TaskSpec] = {t.name: t for t in (FAKE_SYNTHESIS, FAKE_DENOISING)}


def get_fake_task(name: str) -> TaskSpec:
    """``fake_synthesis`` or ``fake_denoising``."""
    if name not in FAKE_TASKS:
        raise UnknownNameError(f"no fake task {name!r}; fake tasks: {sorted(FAKE_TASKS)}")
    return FAKE_TASKS[name]


# ------------------------------------------------------------------------------------------ phantoms
def _grid(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return np.meshgrid(*[np.linspace(-1.0, 1.0, s) for s in shape], indexing="ij")


def _smooth(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """A random low-frequency field in [-1, 1]."""
    k = rng.uniform(0.5, 1.5, size=3)
    phase = rng.uniform(0, 2 * np.pi)
    return np.sin(np.pi * (k[0] * x + k[1] * y + 0.3 * k[2] * z) + phase)


def _anatomy(rng: np.random.Generator, shape: tuple[int, int, int]) -> dict[str, np.ndarray]:
    x, y, z = _grid(shape)
    rx, ry = rng.uniform(0.75, 0.9, size=2)
    body = (x / rx) ** 2 + (y / ry) ** 2 + (z / 1.4) ** 2 < 1.0
    inner = ((x / (0.55 * rx)) ** 2 + (y / (0.5 * ry)) ** 2 + (z / 1.2) ** 2 < 1.0) & body
    c = rng.uniform(-0.25, 0.25, size=2)
    lesion = (((x - c[0]) / 0.22) ** 2 + ((y - c[1]) / 0.22) ** 2 + (z / 0.6) ** 2 < 1.0) & body
    return {"x": x, "y": y, "z": z, "body": body, "inner": inner, "lesion": lesion}


def _case(case_id: str, inputs: dict[str, np.ndarray], target: tuple[str, np.ndarray], anat: dict[str, np.ndarray],
          index: int) -> Case:
    vols = {name: Volume(data.astype(np.float32), FAKE_AFFINE.copy(), name, "a.u.") for name, data in inputs.items()}
    body = anat["body"]
    return Case(
        case_id=case_id,
        inputs=vols,
        target=Volume(target[1].astype(np.float32), FAKE_AFFINE.copy(), target[0], "a.u."),
        masks={"global": np.ones(body.shape, dtype=bool), "body": body.copy(), "lesion": anat["lesion"].copy()},
        metadata={"site": "fake", "index": index},
    )


def make_fake_cases(
    n: int, seed: int = 0, shape: tuple[int, int, int] = FAKE_SHAPE, *, task: str = "fake_synthesis",
    noise: float = 0.1,
) -> list[Case]:
    """``n`` in-memory cases of a fake task (``fake_synthesis`` by default, or ``fake_denoising``).

    Case ``i`` depends only on ``(seed, i)``, so ``make_fake_cases(5)[:3] == make_fake_cases(3)``.
    ``noise`` is the standard deviation of the Gaussian noise of ``x_low`` (``fake_denoising`` only);
    inputs of ``fake_synthesis`` carry a small fixed noise (0.01). Values lie in about [0, 3.5].
    """
    get_fake_task(task)
    cases = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        anat = _anatomy(rng, shape)
        body, inner, lesion = anat["body"], anat["inner"], anat["lesion"]
        f1 = _smooth(rng, anat["x"], anat["y"], anat["z"])
        f2 = _smooth(rng, anat["x"], anat["y"], anat["z"])
        if task == "fake_synthesis":
            a = 1.0 + 0.35 * f1 + 0.3 * inner - 0.2 * lesion
            b = 1.1 - 0.25 * f1 + 0.3 * f2 - 0.2 * inner + 0.5 * lesion
            c = 0.4 * a + 0.5 * b + 0.35 * a * b - 0.1 * a**2 + 0.4 * lesion
            a = (a + 0.01 * rng.standard_normal(shape)) * body
            b = (b + 0.01 * rng.standard_normal(shape)) * body
            cases.append(_case(f"fake{i:03d}", {"a": a, "b": b}, ("c", c * body), anat, i))
        else:
            x = (1.0 + 0.6 * inner + 0.2 * f1 + 0.8 * lesion) * body
            x_low = (x + noise * rng.standard_normal(shape)) * body
            cases.append(_case(f"fakedn{i:03d}", {"x_low": x_low}, ("x", x), anat, i))
    return cases


def make_fake_denoising_cases(
    n: int, seed: int = 0, shape: tuple[int, int, int] = FAKE_SHAPE, noise: float = 0.1
) -> list[Case]:
    """``n`` cases of ``fake_denoising`` (see :func:`make_fake_cases`)."""
    return make_fake_cases(n, seed, shape, task="fake_denoising", noise=noise)


def fake_splits(
    task: str = "fake_synthesis", seed: int = 0, shape: tuple[int, int, int] = FAKE_SHAPE
) -> tuple[list[Case], list[Case], list[Case]]:
    """(train, val, test) = 3, 1 and 1 fresh cases of a fake task."""
    cases = make_fake_cases(5, seed, shape, task=task)
    return cases[:3], cases[3:4], cases[4:]


# ------------------------------------------------------------------------------------------ methods
def input_key(inputs: Mapping[str, Volume], order: Sequence[str] = ()) -> str:
    """A content hash of a case's inputs (names, shapes and float32 values)."""
    h = hashlib.sha256()
    for name in order or sorted(inputs):
        data = np.ascontiguousarray(inputs[name].data, dtype=np.float32)
        h.update(name.encode())
        h.update(repr(data.shape).encode())
        h.update(data.tobytes())
    return h.hexdigest()[:32]


class FakeIdentity(Method):
    """Copies the first input. The smallest complete method: a card, no options, ``predict`` only."""

    card = MethodCard(
        name="fake_identity",
        version="1.0",
        summary="Copies the first input (a reference method for tests and plugin authors).",
        needs_training=False,
    )

    def predict(self, inputs: Mapping[str, Volume]) -> Volume:
        stack, ref = self.stack_inputs(inputs)  # float32 copies, in the fitted input order
        return self.output(stack[0], ref)


class FakeOracle(Method):
    """Returns the target of any case it was fitted on (train and val); copies the first input elsewhere.

    An upper bound on seen cases, useful to test scorers and leaderboards (a perfect score must come
    out). Build one directly from cases with :meth:`from_cases`.
    """

    card = MethodCard(
        name="fake_oracle",
        version="1.0",
        summary=(
            "Memorises the targets of the cases it is fitted on (looked up by a hash of the inputs) and returns "
            "them; unseen cases get the first input."
        ),
        needs_training=True,
    )

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.memory: dict[str, np.ndarray] = {}

    @classmethod
    def from_cases(cls, cases: Sequence[Case], seed: int = 0) -> FakeOracle:
        """An oracle that has seen ``cases``."""
        return cls().fit(list(cases), seed=seed)  # type: ignore[return-value]

    def _fit(self, train: Sequence[Case], val: Sequence[Case], ctx: FitContext) -> None:
        self.memory = {}
        for case in [*train, *val]:
            if case.target is not None:
                self.memory[input_key(case.inputs, self.inputs)] = np.array(case.target.data, dtype=np.float32)

    def predict(self, inputs: Mapping[str, Volume]) -> Volume:
        self.require_fitted()
        stack, ref = self.stack_inputs(inputs)
        known = self.memory.get(input_key(inputs, self.inputs))
        return self.output(known.copy() if known is not None else stack[0], ref)

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {f"target/{key}": value for key, value in self.memory.items()}, {}

    def set_state(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        self.memory = {k.split("/", 1)[1]: np.asarray(v) for k, v in arrays.items() if k.startswith("target/")}


class FakeNoise(Method):
    """The first input plus Gaussian noise of standard deviation ``noise``, seeded by the fit seed and the case.

    Shows how a stochastic method stays deterministic under a seed: the generator is built from the
    seed and a checksum of the inputs, never from global state.
    """

    card = MethodCard(
        name="fake_noise",
        version="1.0",
        summary="Adds seeded Gaussian noise (std = noise) to the first input; a reference stochastic method.",
        needs_training=False,
        stochastic=True,
    )
    defaults = {"noise": 0.1}

    def predict(self, inputs: Mapping[str, Volume]) -> Volume:
        stack, ref = self.stack_inputs(inputs)
        rng = np.random.default_rng([self.seed, zlib.crc32(input_key(inputs, self.inputs).encode())])
        return self.output(stack[0] + float(self.options["noise"]) * rng.standard_normal(stack[0].shape), ref)
