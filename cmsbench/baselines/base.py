"""The method API every baseline and plugin implements.

A method is constructed with hyper-parameters only (nothing heavy at construction or import), trained
with :meth:`Method.fit` on the train split (a no-op for methods that need no training), and asked for
one case at a time with :meth:`Method.predict`, which maps modality name -> input volume to a predicted
target volume on the inputs' grid. Fitted state is saved as tensors only (safetensors) plus plain JSON,
so loading a checkpoint from an untrusted source cannot execute code.

Units: inputs and predictions are in the task's units (``task.units``): MR divided by each image's
healthy-tissue median, CT in HU, PET in Bq/mL.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from cmsbench.errors import MethodError
from cmsbench.tasks.volume import Case, Volume

STATE_FILE = "state.safetensors"
META_FILE = "meta.json"


def _like_default(default: Any, value: Any) -> Any:
    """An option value in its default's type where that is lossless (``1`` for a float default is ``1.0``),
    so that equal settings give one run identity."""
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


@dataclass(frozen=True)
class MethodCard:
    """What a method is and where it comes from (shown on leaderboards, stored in result records)."""

    name: str
    version: str
    summary: str
    paper: str = ""
    licence: str = "Apache-2.0"
    needs_training: bool = True
    stochastic: bool = False
    differences_from_paper: str = ""
    tasks: tuple[str, ...] = ()  # empty: any task whose inputs it can take
    #: how it serves a task whose target varies per case (``TaskSpec.targets``, e.g. ``brats_missing``):
    #: ``"per_target"`` (one fit per possible target, by :mod:`cmsbench.baselines.per_target`),
    #: ``"conditional"`` (handles cases with differing targets itself), ``""`` (cannot: such tasks reject it)
    varying_target: str = ""

    def __post_init__(self) -> None:
        if self.varying_target not in ("", "per_target", "conditional"):
            raise MethodError(f"method card {self.name!r}: varying_target must be '', 'per_target' or "
                              f"'conditional', got {self.varying_target!r}")

    def missing_fields(self) -> list[str]:
        """Names of the fields a complete card must fill."""
        required = ["name", "version", "summary", "licence"]
        if self.paper:
            required.append("differences_from_paper")
        return [f for f in required if not str(getattr(self, f)).strip()]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class FitContext:
    """What ``fit`` receives besides the cases."""

    device: str = "cpu"
    seed: int = 0
    target: str = ""
    inputs: tuple[str, ...] = ()
    units: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class Method(ABC):
    """Base class of every synthesis method. Subclasses set ``card`` and implement ``_fit``/``predict``."""

    card: ClassVar[MethodCard]
    #: default hyper-parameters; the constructor accepts exactly these keys
    defaults: ClassVar[Mapping[str, Any]] = {}
    #: options added after the method's first release: at their default value they are left out of
    #: :meth:`identity_options`, so the runs (and records) made before they existed keep their identity
    late_options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            raise MethodError(
                f"method {self.card.name!r} has no option(s) {unknown}; its options: {dict(self.defaults)}"
            )
        self.options: dict[str, Any] = {**self.defaults, **{k: _like_default(self.defaults[k], v)
                                                            for k, v in options.items()}}
        self.fitted = False
        self.inputs: tuple[str, ...] = ()
        self.target: str = ""
        self.seed: int = 0
        self.device: str = "cpu"
        self.target_units: str = ""

    # -------------------------------------------------------------------------------------- API
    def fit(
        self,
        train: Sequence[Case],
        val: Sequence[Case] = (),
        *,
        device: str = "cpu",
        seed: int = 0,
    ) -> Method:
        """Train on ``train`` (tune on ``val``); returns ``self``. Input order is taken from the cases."""
        if len(train) == 0:
            raise MethodError(f"method {self.card.name!r}: fit needs at least one training case")
        first = train[0]
        if first.target is None:
            raise MethodError(f"method {self.card.name!r}: training case {first.case_id!r} has no target")
        self.inputs = tuple(first.inputs)
        self.target = first.target.modality
        self.seed = int(seed)
        self.device = device
        self.target_units = first.target.units
        self._fit(train, val, FitContext(device=device, seed=int(seed), target=self.target, inputs=self.inputs,
                                         units=first.target.units))
        self.fitted = True
        return self

    def _fit(self, train: Sequence[Case], val: Sequence[Case], ctx: FitContext) -> None:  # noqa: B027
        """Subclass hook; the default (methods that need no training) does nothing."""

    @abstractmethod
    def predict(self, inputs: Mapping[str, Volume]) -> Volume:
        """Synthesise the target for one case from its input volumes (never modifies them)."""

    # ------------------------------------------------------------------------------ persistence
    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """(arrays, JSON-able metadata) describing the fitted state. Override to add arrays."""
        return {}, {}

    def set_state(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:  # noqa: B027
        """Restore what :meth:`get_state` returned. Override together with it."""

    def save(self, folder: str | Path) -> Path:
        """Write ``state.safetensors`` (tensors only) and ``meta.json`` (plain JSON) into ``folder``."""
        from safetensors.numpy import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = self.get_state()
        if not (isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], Mapping)):
            raise MethodError(f"method {self.card.name!r}: get_state must return (dict of arrays, dict), got "
                              f"{type(state).__name__}")
        arrays, meta = state
        checked = {}
        for key, value in arrays.items():
            arr = np.asarray(value)
            if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
                raise MethodError(f"method {self.card.name!r}: get_state entry {key!r} is {type(value).__name__} "
                                  f"(dtype {arr.dtype}), not a numeric array; fitted state is tensors only (put "
                                  "other values in the JSON part)")
            checked[str(key)] = np.ascontiguousarray(arr)
        arrays = checked
        import os

        tmp_state = folder / f".{STATE_FILE}.{os.getpid()}.tmp"
        save_file(arrays, str(tmp_state))
        tmp_state.replace(folder / STATE_FILE)
        record = {
            "method": self.card.name, "version": self.card.version, "options": self.options,
            "inputs": list(self.inputs), "target": self.target, "target_units": self.target_units,
            "seed": self.seed, "fitted": self.fitted,
            "meta": meta,
        }
        tmp_meta = folder / f".{META_FILE}.{os.getpid()}.tmp"
        tmp_meta.write_text(json.dumps(record, default=_json_default, indent=1))
        tmp_meta.replace(folder / META_FILE)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Method:
        """Rebuild a fitted method from :meth:`save`'s folder (no code is executed from the files)."""
        from safetensors.numpy import load_file

        folder = Path(folder)
        try:
            record = json.loads((folder / META_FILE).read_text())
            arrays = load_file(str(folder / STATE_FILE))
        except (OSError, ValueError) as exc:
            raise MethodError(f"cannot load a fitted {cls.card.name!r} from {folder}: {exc}") from exc
        if record.get("method") != cls.card.name:
            raise MethodError(f"{folder} holds a fitted {record.get('method')!r}, not {cls.card.name!r}")
        method = cls(**record.get("options", {}))
        method.inputs = tuple(record.get("inputs", ()))
        method.target = record.get("target", "")
        method.seed = int(record.get("seed", 0))
        method.target_units = record.get("target_units", "")
        method.set_state(arrays, record.get("meta", {}))
        method.fitted = bool(record.get("fitted", True))
        return method

    def identity_options(self) -> dict[str, Any]:
        """The options that name a run: every option, except the :attr:`late_options` left at their default."""
        return {k: v for k, v in self.options.items()
                if not (k in self.late_options and v == self.defaults.get(k))}

    # ---------------------------------------------------------------------------------- helpers
    def require_fitted(self) -> None:
        """Raise a clear error when a method that needs training is asked to predict first."""
        if self.card.needs_training and not self.fitted:
            raise MethodError(
                f"method {self.card.name!r} must be fitted before predict: call fit(train_cases) or load a "
                "fitted state"
            )

    def stack_inputs(self, inputs: Mapping[str, Volume]) -> tuple[np.ndarray, Volume]:
        """Inputs as a (C, X, Y, Z) float32 array in the fitted order, and the reference volume."""
        order = self.inputs or tuple(inputs)
        missing = [m for m in order if m not in inputs]
        if missing:
            raise MethodError(f"method {self.card.name!r} needs inputs {list(order)}, missing {missing}")
        ref = inputs[order[0]]
        return np.stack([np.asarray(inputs[m].data, dtype=np.float32) for m in order]), ref

    def output(self, data: np.ndarray, reference: Volume) -> Volume:
        """Wrap a predicted array as a volume on the reference grid, in the target's modality."""
        return Volume(np.asarray(data, dtype=np.float32), reference.affine.copy(), self.target or "prediction",
                      self.target_units or reference.units)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")
