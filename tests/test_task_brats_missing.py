"""``brats_missing`` (BraSyn): one sequence missing per case, how methods serve a per-case target (issue 19).

Quick tests read the tiny BraTS layouts (``cmsbench.testing.layouts``); the end-to-end test runs ``identity``,
``poly2`` and a tiny ``unet`` through the runner on 31 BraTS phantoms (9 test cases, every sequence missing at
least once under the default seed) cropped to 8 slices. Measured there (brain PSNR, mean over the 9 test
cases, dB): identity 28.5, poly2 32.1; the tiny unet of this test (2 steps) 11.9, which only shows the path
works; unet's small preset with 350 steps per member (not run here: 233 s for the four fits on 2 cores) 30.7.
Identity's members copy t1ce for t1, t1 for t1ce, t1ce for flair and flair for t2 (the input most correlated
with the target on train; every input is anti-correlated with t2, so its t2 cases score lowest, 17 dB).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from cmsbench.baselines.base import Method, MethodCard
from cmsbench.baselines.per_target import PerTargetMethod
from cmsbench.baselines.registry import METHODS
from cmsbench.benchmark.runner import RunConfig, run
from cmsbench.cli import main
from cmsbench.errors import MethodError
from cmsbench.results import load_record
from cmsbench.tasks.adapters.brats_missing import missing_sequence
from cmsbench.tasks.dataset import check_dataset, open_dataset
from cmsbench.tasks.normalise import healthy_region
from cmsbench.tasks.registry import get_task, list_tasks
from cmsbench.tasks.splits import make_split
from cmsbench.testing import layouts

TASK = "brats_missing"
SEQUENCES = ("t1", "t1ce", "t2", "flair")

#: fingerprints of the fixed-target tasks computed before TaskSpec.targets existed (commit 6186805)
FINGERPRINTS_BEFORE = {
    "brats_flair": "db1ac132e6e2228d",
    "ixi_t1_t2": "0ca2107961a60c0f",
    "ixi_t2_pd": "505d97a12ab67ede",
    "ixi_t1_t2_xsite": "ea96bf4d32174108",
    "ldpet": "73c6c1c9493b7ee8",
    "ldct": "83e05cc6b2215788",
    "mr_ct": "c2a5109ca14a2b7e",
}


# ---------------------------------------------------------------------------------------- the task
def test_spec_states_the_rule_and_leaves_fixed_target_fingerprints_alone() -> None:
    task = get_task(TASK)
    assert task.inputs == SEQUENCES and task.targets == SEQUENCES and task.varies_target
    assert task.summary() == "3 of t1 + t1ce + t2 + flair -> the missing one"
    assert task.parameters == {"missing_seed": 123456} and task.adapter_options["missing_seed"] == 123456
    assert "SHA-256" in task.description and "hongweilibran/BraSyn" in task.description
    assert task.to_dict()["targets"] == list(SEQUENCES)
    assert task.with_parameters(missing_seed=1).fingerprint() != task.fingerprint()
    assert task.for_target("t2").inputs == ("t1", "t1ce", "flair") and task.for_target("t2").target == "t2"
    for name, fingerprint in FINGERPRINTS_BEFORE.items():
        assert get_task(name).fingerprint() == fingerprint, name
    for spec in list_tasks():
        if spec.name != TASK:
            assert "targets" not in spec.to_dict() and not spec.varies_target


def test_the_rule_is_sha256_of_seed_and_case_id() -> None:
    digest = hashlib.sha256(b"123456:BraTS-GLI-00042-000").digest()
    assert missing_sequence("BraTS-GLI-00042-000", 123456, SEQUENCES) == SEQUENCES[
        int.from_bytes(digest[:8], "big") % 4]
    # another seed moves some cases: the seed is part of the rule
    ids = [f"BraTS-GLI-{i:05d}-000" for i in range(40)]
    assert [missing_sequence(c, 0, SEQUENCES) for c in ids] != [missing_sequence(c, 123456, SEQUENCES) for c in ids]


def test_every_sequence_is_missing_somewhere_in_the_default_phantom_test_set() -> None:
    """The choice needs only the IDs: the 22 test cases of the default (100-subject) phantom dataset."""
    from cmsbench.tasks.phantoms.catalog import subject_ids

    task = get_task(TASK)
    split = make_split(subject_ids("brats"), task.split)
    counts = Counter(missing_sequence(c, 123456, SEQUENCES) for c in split.test)
    assert counts == {"flair": 7, "t1": 6, "t1ce": 5, "t2": 4}


@pytest.mark.parametrize("layout", ["brats2021", "brats2023"])
def test_cases_lack_the_chosen_sequence_the_same_way_on_every_opening(tmp_path: Path, layout: str) -> None:
    layouts.write_brats(tmp_path, n=8, layout=layout)
    task = get_task(TASK)
    first = open_dataset(task, tmp_path)
    again = open_dataset(task, tmp_path, use_cache=False)
    seen = set()
    for cid in sorted(first.refs):
        case, raw = first.load_case(cid), again.load_case(cid, normalise=False)
        missing = missing_sequence(cid, 123456, SEQUENCES)
        seen.add(missing)
        assert case.metadata["missing"] == raw.metadata["missing"] == missing == case.target.modality
        assert case.metadata["missing_rule"]["seed"] == 123456
        assert list(case.inputs) == [s for s in SEQUENCES if s != missing]
        # each image divided by its own healthy-brain median, the target's from the ground truth
        healthy = healthy_region(raw, "brain")
        for name, vol in [*case.inputs.items(), ("target", case.target)]:
            src = raw.inputs[name] if name != "target" else raw.target
            median = float(np.median(np.asarray(src.data)[healthy]))
            np.testing.assert_allclose(vol.data, np.asarray(src.data, np.float32) / np.float32(median), rtol=1e-6)
    assert len(seen) >= 2
    other = open_dataset(task.with_parameters(missing_seed=7), tmp_path)
    assert [other.load_case(c).target.modality for c in sorted(other.refs)] == [
        missing_sequence(c, 7, SEQUENCES) for c in sorted(other.refs)]


def test_data_check_and_tasks_name_the_task_and_a_missing_file(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    layouts.write_brats(tmp_path, n=3, layout="brats2023")
    (tmp_path / "BraTS-GLI-00001-000" / "BraTS-GLI-00001-000-t2f.nii.gz").unlink()
    report = check_dataset(get_task(TASK), tmp_path)
    assert report.n_cases == 2 and len(report.problems) == 1
    rc = main(["data", "check", "--task", TASK, "--data-root", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 1 and "BraTS-GLI-00001-000-t2f.nii.gz" in out
    assert main(["tasks"]) == 0
    assert "3 of t1 + t1ce + t2 + flair -> the missing one" in capsys.readouterr().out


# ----------------------------------------------------------------------------- methods on the task
class Undeclared(Method):
    """A fixed-target method whose card says nothing about varying targets."""

    card = MethodCard("undeclared_bm", "1", "mean of the inputs")
    fits = 0

    def _fit(self, train, val, ctx) -> None:
        Undeclared.fits += 1

    def predict(self, inputs):
        stack, ref = self.stack_inputs(inputs)
        return self.output(stack.mean(axis=0), ref)


class Conditional(Method):
    """Handles the varying target itself: the median of what it is given, remembering the targets it saw."""

    card = MethodCard("conditional_bm", "1", "mean of whatever inputs a case has", varying_target="conditional")
    seen: list[str] = []

    def _fit(self, train, val, ctx) -> None:
        Conditional.seen = [case.target.modality for case in train]

    def predict(self, inputs):
        data = np.mean([np.asarray(v.data, np.float32) for v in inputs.values()], axis=0)
        ref = next(iter(inputs.values()))
        return self.output(data, ref)


@pytest.fixture()
def registered():
    for name, cls in (("undeclared_bm", "Undeclared"), ("conditional_bm", "Conditional")):
        METHODS.register(name, f"{__name__}:{cls}")
    try:
        yield
    finally:
        METHODS.unregister("undeclared_bm")
        METHODS.unregister("conditional_bm")


def test_a_method_that_does_not_declare_it_is_rejected_before_fit(tmp_path: Path, registered) -> None:
    layouts.write_brats(tmp_path / "d", n=8, layout="brats2023")
    Undeclared.fits = 0
    with pytest.raises(MethodError) as err:
        run(RunConfig(task=TASK, method="undeclared_bm", data_root=str(tmp_path / "d"), device="cpu",
                      results=tmp_path / "res", thumbnails=0))
    message = str(err.value)
    assert "'undeclared_bm'" in message and "'brats_missing'" in message
    assert 'varying_target="per_target"' in message and "conditional" in message
    assert Undeclared.fits == 0 and not (tmp_path / "res").exists()
    # the same method runs a fixed-target task as before
    assert not run(RunConfig(task="brats_flair", method="undeclared_bm", data_root=str(tmp_path / "d"),
                             device="cpu", results=tmp_path / "res2", thumbnails=0)).failed


def test_a_conditional_method_gets_the_cases_as_they_are(tmp_path: Path, registered) -> None:
    layouts.write_brats(tmp_path / "d", n=12, layout="brats2023")
    outcome = run(RunConfig(task=TASK, method="conditional_bm", data_root=str(tmp_path / "d"), device="cpu",
                            results=tmp_path / "res", thumbnails=0))
    assert not outcome.failed
    ds = open_dataset(get_task(TASK), tmp_path / "d")
    assert Conditional.seen == [missing_sequence(c, 123456, SEQUENCES) for c in ds.case_ids("train")]
    assert len(set(Conditional.seen)) >= 2
    assert {c: e.target for c, e in outcome.record.cases.items()} == {
        c: missing_sequence(c, 123456, SEQUENCES) for c in ds.case_ids("test")}


def test_per_target_fits_one_member_per_sequence_and_round_trips(tmp_path: Path) -> None:
    from cmsbench.baselines.classical import Poly2RegressionMethod

    layouts.write_brats(tmp_path / "d", n=12, layout="brats2021")
    task = get_task(TASK)
    ds = open_dataset(task, tmp_path / "d")
    train = [ds.load_case(c) for c in ds.case_ids("train")]
    method = PerTargetMethod.for_task(Poly2RegressionMethod, task).fit(train, seed=0)
    assert sorted(method.members) == sorted(SEQUENCES)
    for target, member in method.members.items():
        assert member.target == target and member.inputs == tuple(s for s in SEQUENCES if s != target)
    loaded = PerTargetMethod.load(method.save(tmp_path / "state"), Poly2RegressionMethod)
    for cid in ds.case_ids("test"):
        case = ds.load_case(cid)
        a, b = method.predict(case.inputs), loaded.predict(case.inputs)
        assert a.modality == b.modality == case.target.modality
        np.testing.assert_array_equal(a.data, b.data)
    with pytest.raises(MethodError, match="exactly one of them must be missing"):
        method.predict({**case.inputs, case.target.modality: case.target})


# -------------------------------------------------------------------------- end to end on phantoms
def _crop(root: Path, keep: tuple[int, int] = (8, 16)) -> None:
    """Keep slices ``keep`` of every volume: a fast phantom."""
    import nibabel as nib

    for path in sorted(root.glob("*/*.nii.gz")):
        img = nib.load(str(path))
        out = img.slicer[:, :, keep[0]:keep[1]]
        nib.save(nib.Nifti1Image(np.asanyarray(out.dataobj), out.affine, out.header), str(path))


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cmsbench.tasks.phantoms import synthesize

    root = Path(synthesize("brats", tmp_path_factory.mktemp("brats_missing"), subjects=31, seed=0))
    _crop(root)
    return root


UNET_TINY = {"features": [4, 4, 4, 4, 4, 4], "steps": 2, "batch_size": 2}


@pytest.mark.slow
def test_identity_poly2_and_unet_run_end_to_end_and_record_the_missing_sequence(phantom: Path,
                                                                                   tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from cmsbench.leaderboard.aggregate import case_values

    ds = open_dataset(get_task(TASK), phantom)
    expected = {c: missing_sequence(c, 123456, SEQUENCES) for c in ds.case_ids("test")}
    assert set(expected.values()) == set(SEQUENCES) and len(expected) == 9
    records = {}
    for method, options in (("identity", {}), ("poly2", {}), ("unet", UNET_TINY)):
        outcome = run(RunConfig(task=TASK, method=method, data_root=str(phantom), device="cpu", options=options,
                                results=tmp_path / "res", thumbnails=0))
        record = load_record(outcome.path)
        assert record.status == "complete" and not outcome.failed, outcome.failed
        assert {c: e.target for c, e in record.cases.items()} == expected
        assert record.task.spec["targets"] == list(SEQUENCES)
        records[method] = record
    # a second run (another results folder) reuses the four fitted members and gives the same record
    again = run(RunConfig(task=TASK, method="unet", data_root=str(phantom), device="cpu", options=UNET_TINY,
                          results=tmp_path / "res_again", thumbnails=0)).record
    assert again.timing["fit_cached"] is True and not records["unet"].timing["fit_cached"]
    assert {c: e.target for c, e in again.cases.items()} == expected
    assert case_values(again, "brain", "psnr") == case_values(records["unet"], "brain", "psnr")
    base = case_values(records["identity"], "brain", "psnr")
    quad = case_values(records["poly2"], "brain", "psnr")
    assert len(base) == len(quad) == 9
    gain = np.mean([quad[c] - base[c] for c in base])
    assert gain > 1.0, f"poly2 only {gain:.2f} dB above identity"
