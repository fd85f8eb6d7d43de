"""The identity baseline: copy the input most similar to the target."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cmsbench.baselines.base import FitContext, Method, MethodCard
from cmsbench.baselines.classical._common import check_source, correlations, match_by_name, sample_voxels
from cmsbench.tasks.volume import Case, Volume


class IdentityMethod(Method):
    """Copy one input unchanged, in the input's units.

    Which input: the ``source`` option when given; after :meth:`fit`, the input with the highest
    Pearson correlation to the target over a seeded subsample of the train cases' foreground voxels
    (any input non-zero); without fit, the input that names the target (``pet_low`` for ``pet``,
    ``ct_low`` for ``ct``) or else the first input.
    """

    card = MethodCard(
        name="identity",
        version="1.0",
        varying_target="per_target",
        summary=(
            "Copies one input unchanged: the one most correlated with the target on the train split (after "
            "fit), else the one named like the target (pet_low -> pet), else the first. The floor every "
            "method must beat; for denoising tasks it scores the low-dose input itself."
        ),
        needs_training=False,
    )
    defaults = {"source": None, "max_voxels": 200_000}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.source: str | None = None
        self.correlations: dict[str, float] = {}

    def _fit(self, train: Sequence[Case], val: Sequence[Case], ctx: FitContext) -> None:
        if self.options["source"] is not None:
            self.source = check_source(str(self.options["source"]), self.inputs, self.card.name)
            self.correlations = {}
            return
        sample = sample_voxels(train, self.inputs, max_voxels=int(self.options["max_voxels"]), seed=ctx.seed,
                               method=self.card.name)
        r = correlations(sample.x, sample.y)
        self.correlations = {name: float(v) for name, v in zip(self.inputs, r, strict=True)}
        self.source = self.inputs[int(np.argmax(r))]

    def choose(self, available: Sequence[str]) -> str:
        """The input this method copies, given the available input names."""
        if self.options["source"] is not None:
            return check_source(str(self.options["source"]), list(available), self.card.name)
        if self.source is not None and self.source in available:
            return self.source
        return match_by_name(available, self.target) or available[0]

    def predict(self, inputs: Mapping[str, Volume]) -> Volume:
        self.require_fitted()
        _, ref = self.stack_inputs(inputs)
        name = self.choose(list(self.inputs or inputs))
        return self.output(np.array(inputs[name].data, dtype=np.float32, copy=True), ref)

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {}, {"source": self.source, "correlations": self.correlations}

    def set_state(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        self.source = meta.get("source")
        self.correlations = dict(meta.get("correlations", {}))
