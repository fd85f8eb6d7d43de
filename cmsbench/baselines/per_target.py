"""How a method serves a task whose target varies per case (``TaskSpec.targets``, e.g. BraSyn's missing sequence).

A method says so on its card, :attr:`MethodCard.varying_target`:

* ``"per_target"``: the method is an ordinary fixed-target one; :class:`PerTargetMethod` fits one instance
  (a *member*) per possible target on the train split, each seeing every train (and val) case re-viewed as
  inputs = the other modalities, target = that one (:func:`view_for_target`), with the same options and seed.
  At predict time the case's target is the one candidate absent from its inputs (as BraSyn participants
  detect it), and that member predicts it.
* ``"conditional"``: the method handles cases whose target differs itself; it is given the cases as they are
  (each case's ``target.modality`` names its target) and must infer the target from the inputs it gets.

A method whose card declares neither is rejected by :func:`check_varying_target` before any training.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from cmsbench.baselines.base import META_FILE, Method, MethodCard
from cmsbench.errors import MethodError
from cmsbench.tasks.spec import TaskSpec
from cmsbench.tasks.volume import Case, Volume

#: the values of ``MethodCard.varying_target`` that serve a varying-target task
VARYING_TARGET_KINDS = ("per_target", "conditional")
MEMBERS_DIR = "members"


def check_varying_target(card: MethodCard, task: TaskSpec) -> None:
    """Raise :class:`MethodError` when ``task``'s target varies per case and ``card`` does not say how it copes."""
    if not task.targets or card.varying_target in VARYING_TARGET_KINDS:
        return
    raise MethodError(
        f"method {card.name!r} cannot run task {task.name!r}: the task's target varies per case (one of "
        f"{', '.join(task.targets)}, the others are the inputs) and the method's card does not say how it serves "
        "such a task. Declare it on the card: MethodCard(..., varying_target=\"per_target\") when the method is "
        "a fixed-target input -> target model (cmsbench then fits one instance per possible target on the train "
        "split), or varying_target=\"conditional\" when the method itself handles cases whose target differs "
        "(it infers the target from the missing input)."
    )


def view_for_target(case: Case, target: str, roles: Sequence[str]) -> Case:
    """``case`` re-viewed for one target: inputs = every other modality of ``roles`` (in that order), target =
    ``target``. The case must hold every role (as inputs or as its target); normalisation divisors follow."""
    volumes: dict[str, Volume] = dict(case.inputs)
    if case.target is not None:
        volumes[case.target.modality] = case.target
    missing = [r for r in roles if r not in volumes]
    if missing:
        raise MethodError(f"case {case.case_id!r} lacks {missing} (has {sorted(volumes)}); a per-target fit needs "
                          "every modality of the task in each train and val case")
    metadata = dict(case.metadata)
    norm = metadata.get("normalisation")
    if isinstance(norm, Mapping) and isinstance(norm.get("divisors"), Mapping):
        old = dict(norm["divisors"])
        if case.target is not None and "target" in old:
            old[case.target.modality] = old.pop("target")
        divisors = {r: old[r] for r in roles if r != target and r in old}
        if target in old:
            divisors["target"] = old[target]
        metadata["normalisation"] = {**norm, "divisors": divisors}
    metadata["per_target_view"] = target
    return Case(case_id=case.case_id, inputs={r: volumes[r] for r in roles if r != target}, target=volumes[target],
                masks=case.masks, labels=case.labels, metadata=metadata)


class TargetView(Sequence[Case]):
    """A sequence of cases (e.g. the runner's lazily loaded train split), each re-viewed for one target."""

    def __init__(self, cases: Sequence[Case], target: str, roles: Sequence[str]) -> None:
        self.cases, self.target, self.roles = cases, target, tuple(roles)

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, index: int) -> Case:  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]  # type: ignore[return-value]
        return view_for_target(self.cases[index], self.target, self.roles)

    def __iter__(self) -> Iterator[Case]:
        for i in range(len(self)):
            yield self[i]


class PerTargetMethod(Method):
    """One member of a fixed-target ``method_cls`` per possible target; predicts with the case's member.

    ``roles``: every modality a case may hold (the task's ``inputs``); ``targets``: those that may be missing.
    Its card, options and name are the wrapped method's (records and caches name the wrapped method).
    """

    def __init__(self, method_cls: type[Method], roles: Sequence[str], targets: Sequence[str],
                 **options: Any) -> None:
        if not targets or any(t not in roles for t in targets):
            raise MethodError(f"per-target fit of {method_cls.card.name!r}: targets {list(targets)} must be among "
                              f"roles {list(roles)}")
        self.card = method_cls.card  # type: ignore[misc]
        self.defaults = method_cls.defaults  # type: ignore[misc]
        super().__init__(**options)
        self.method_cls = method_cls
        self.roles, self.targets = tuple(roles), tuple(targets)
        self.members: dict[str, Method] = {}
        self.last_nfe: int | None = None

    @classmethod
    def for_task(cls, method_cls: type[Method], task: TaskSpec, **options: Any) -> PerTargetMethod:
        """The wrapper for a varying-target ``task``."""
        return cls(method_cls, task.inputs, task.targets, **options)

    def fit(self, train: Sequence[Case], val: Sequence[Case] = (), *, device: str = "cpu",
            seed: int = 0) -> PerTargetMethod:
        """Fit one member per target on the re-viewed train (and val) cases, each with ``seed``."""
        if len(train) == 0:
            raise MethodError(f"method {self.card.name!r}: fit needs at least one training case")
        self.members = {}
        for target in self.targets:
            member = self.method_cls(**self.options)
            returned = member.fit(TargetView(train, target, self.roles), TargetView(val, target, self.roles),
                                  device=device, seed=seed)
            if returned is not member:
                raise MethodError(f"{self.card.name}.fit must return the method itself "
                                  f"(got {type(returned).__name__})")
            self.members[target] = member
        self.inputs, self.target = self.roles, ""
        self.seed, self.device, self.fitted = int(seed), device, True
        self.target_units = next(iter(self.members.values())).target_units
        return self

    def member_for(self, inputs: Mapping[str, Volume]) -> tuple[str, Method]:
        """(target, member) for a case with these inputs: the one target absent from them."""
        absent = [t for t in self.targets if t not in inputs]
        if len(absent) != 1:
            raise MethodError(
                f"method {self.card.name!r} (one fit per target of {list(self.targets)}): exactly one of them must "
                f"be missing from a case's inputs, got inputs {sorted(inputs)}")
        if not self.members:
            raise MethodError(f"method {self.card.name!r} must be fitted before predict: call fit(train_cases) or "
                              "load a fitted state")
        return absent[0], self.members[absent[0]]

    def predict(self, inputs: Mapping[str, Volume]) -> Volume:
        _, member = self.member_for(inputs)
        member.device = self.device
        out = member.predict({m: inputs[m] for m in (member.inputs or inputs) if m in inputs})
        self.last_nfe = getattr(member, "last_nfe", None)
        return out

    def save(self, folder: str | Path) -> Path:
        """Every member in ``members/<target>/``, then ``meta.json`` (written last: its presence means complete)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for target, member in self.members.items():
            member.save(folder / MEMBERS_DIR / target)
        record = {"method": self.card.name, "version": self.card.version, "per_target": True,
                  "options": self.options, "roles": list(self.roles), "targets": list(self.targets),
                  "seed": self.seed, "fitted": self.fitted, "target_units": self.target_units}
        tmp = folder / f".{META_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(record, indent=1, default=str))
        tmp.replace(folder / META_FILE)
        return folder

    @classmethod
    def load(cls, folder: str | Path, method_cls: type[Method] | None = None) -> PerTargetMethod:  # type: ignore[override]
        """Rebuild a fitted wrapper of ``method_cls`` from :meth:`save`'s folder (members by ``method_cls.load``)."""
        folder = Path(folder)
        if method_cls is None:
            raise MethodError("PerTargetMethod.load needs the wrapped method class")
        try:
            record = json.loads((folder / META_FILE).read_text())
        except (OSError, ValueError) as exc:
            raise MethodError(f"cannot load a per-target {method_cls.card.name!r} from {folder}: {exc}") from exc
        if not record.get("per_target") or record.get("method") != method_cls.card.name:
            raise MethodError(f"{folder} does not hold a per-target fit of {method_cls.card.name!r} "
                              f"(method {record.get('method')!r}); delete it or run with --refit")
        wrapper = cls(method_cls, record["roles"], record["targets"], **record.get("options", {}))
        wrapper.members = {t: method_cls.load(folder / MEMBERS_DIR / t) for t in wrapper.targets}
        wrapper.inputs = wrapper.roles
        wrapper.seed = int(record.get("seed", 0))
        wrapper.target_units = record.get("target_units", "")
        wrapper.fitted = bool(record.get("fitted", True))
        return wrapper
