"""Segmenters as plugins: the ``command`` segmenter runs a user's script, is pinned by the script's SHA-256,
and a failure on one case fails that case only."""

from __future__ import annotations

import hashlib
import textwrap

import numpy as np
import pytest

from cmsbench.benchmark.downstream.segmenters import (
    SEGMENTERS,
    CommandSegmenter,
    Segmenter,
    SegmenterError,
    get_segmenter,
)
from cmsbench.errors import UnknownNameError
from cmsbench.tasks.volume import Volume

SCRIPT = textwrap.dedent('''
    """Threshold segmenter: label 1 where channel 0 > 0.5, 2 where channel 1 > 0.5 as well. It reads and
    writes NIfTI-1 with numpy alone (importing nibabel would triple the test's time)."""
    import gzip
    import sys
    from pathlib import Path

    import numpy as np

    def read(path):
        raw = gzip.decompress(path.read_bytes())
        dims = np.frombuffer(raw, "<i2", 8, 40)
        offset = int(np.frombuffer(raw, "<f4", 1, 108)[0])
        shape = tuple(int(d) for d in dims[1:1 + dims[0]])
        data = np.frombuffer(raw, "<f4", int(np.prod(shape)), offset).reshape(shape, order="F")
        return raw[:offset], data

    inp, out = Path(sys.argv[1]), Path(sys.argv[2])
    for first in sorted(inp.glob("*_0000.nii.gz")):
        case = first.name[: -len("_0000.nii.gz")]
        if case.startswith("bad"):
            sys.exit(f"cannot segment {case}: unexpected intensities")
        if case.startswith("silent"):
            continue  # writes nothing
        header, a = read(first)
        _, b = read(inp / f"{case}_0001.nii.gz")
        labels = ((a > 0.5) * (1 + (b > 0.5))).astype(np.uint8)
        header = bytearray(header)
        header[70:74] = np.array([2, 8], "<i2").tobytes()  # datatype uint8, 8 bits per voxel
        header[112:120] = np.array([1.0, 0.0], "<f4").tobytes()  # no intensity scaling
        blob = bytes(header) + labels.tobytes(order="F")
        (out / f"{case}.nii.gz").write_bytes(gzip.compress(blob))
''')


def _case(seed: int, shape=(10, 9, 8)) -> dict[str, Volume]:
    rng = np.random.default_rng(seed)
    affine = np.diag([1.0, 1.5, 2.0, 1.0])
    return {name: Volume(rng.random(shape).astype(np.float32), affine) for name in ("flair", "t1")}


def _expected(images: dict[str, Volume]) -> np.ndarray:
    a, b = images["flair"].data, images["t1"].data
    return (a > 0.5) * (1 + (b > 0.5))


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "seg.py"
    path.write_text(SCRIPT)
    return path


def _command(script) -> str:
    return f"{{python}} {script} {{input_dir}} {{output_dir}}"


def test_registered_command_segmenter_segments_and_pins_its_script(tmp_path, script, monkeypatch):
    (tmp_path / "my_segmenters.py").write_text(textwrap.dedent(f'''
        from cmsbench.benchmark.downstream.segmenters import CommandSegmenter
        THRESH = CommandSegmenter({_command(script)!r}, [{str(script)!r}], channels=["flair", "t1"],
                                  name="thresh_test", version="0.1")
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    SEGMENTERS.register("thresh_test", "my_segmenters:THRESH")
    try:
        seg = get_segmenter("thresh_test")
        assert isinstance(seg, Segmenter) and seg.name == "thresh_test" and "thresh_test" in SEGMENTERS.names()
        ident = seg.identity()
        assert ident["files"] == {"seg.py": hashlib.sha256(script.read_bytes()).hexdigest()}
        assert ident["version"] == "0.1" and ident["channels"] == ["flair", "t1"]
        case = _case(0)
        labels = seg.segment(case, case_id="c0")
        assert labels.dtype.kind == "i" and np.array_equal(labels, _expected(case))
        assert set(np.unique(labels)) == {0, 1, 2}
    finally:
        SEGMENTERS.unregister("thresh_test")


def test_changing_the_script_changes_the_digest(script):
    before = get_segmenter("command", command=_command(script), files=[script])
    again = get_segmenter("command", command=_command(script), files=[script])
    assert before.digest() == again.digest()
    script.write_text(SCRIPT.replace("> 0.5", "> 0.4"))  # same length class, other bytes
    after = get_segmenter("command", command=_command(script), files=[script])
    assert after.digest() != before.digest()
    assert after.identity()["files"]["seg.py"] == hashlib.sha256(script.read_bytes()).hexdigest()
    # the command line and the channel order are part of the identity too
    assert CommandSegmenter(_command(script), [script], channels=["t1", "flair"]).digest() != after.digest()


def test_a_case_the_script_fails_on_fails_alone_with_its_reason(script):
    seg = CommandSegmenter(_command(script), [script], channels=["flair", "t1"])
    cases = {"good1": _case(1), "bad7": _case(2), "silent3": _case(3), "good2": _case(4)}
    out = seg.segment_cases(cases)
    assert list(out) == list(cases)
    assert out["good1"].ok and out["good2"].ok and out["good1"].seconds > 0
    assert np.array_equal(out["good2"].labels, _expected(cases["good2"]))
    assert not out["bad7"].ok and "'bad7'" in out["bad7"].error and "exited with status 1" in out["bad7"].error
    assert "cannot segment bad7: unexpected intensities" in out["bad7"].error
    assert not out["silent3"].ok and "wrote no label map for case 'silent3'" in out["silent3"].error
    with pytest.raises(SegmenterError, match="'bad7'"):
        seg.segment(cases["bad7"], case_id="bad7")


def test_batch_mode_runs_once_and_a_crash_fails_the_batch(script):
    seg = CommandSegmenter(_command(script), [script], channels=["flair", "t1"], per_case=False)
    good = seg.segment_cases({"a": _case(5), "b": _case(6)})
    assert all(s.ok for s in good.values()) and np.array_equal(good["b"].labels, _expected(_case(6)))
    mixed = seg.segment_cases({"a": _case(5), "bad": _case(6)})
    assert not any(s.ok for s in mixed.values()) and "batch of 2 case(s)" in mixed["a"].error


def test_bad_configuration_gives_clear_errors(tmp_path, script):
    with pytest.raises(SegmenterError, match="does not exist"):
        CommandSegmenter(_command(script), [tmp_path / "missing.py"])
    with pytest.raises(SegmenterError, match=r"does not contain \{output_dir\}"):
        CommandSegmenter(f"python {script} {{input_dir}}", [script])
    seg = CommandSegmenter(_command(script) + " {modelz}", [script])
    with pytest.raises(SegmenterError, match=r"unknown placeholder \{modelz\}"):
        seg.segment(_case(0), case_id="c")
    seg = CommandSegmenter(_command(script), [script], channels=["flair", "t2"])
    with pytest.raises(SegmenterError, match="needs channel"):
        seg.segment(_case(0), case_id="c")
    with pytest.raises(SegmenterError, match="cannot run"):
        CommandSegmenter("/nonexistent/tool {input_dir} {output_dir}").segment(_case(0), case_id="c")
    with pytest.raises(SegmenterError, match="not an nnU-Net v2 model folder"):
        CommandSegmenter.nnunet(tmp_path, channels=["t1n", "t1c", "t2w", "t2f"])
    with pytest.raises(UnknownNameError, match="Did you mean 'command'"):
        get_segmenter("comand")


def test_the_command_segmenter_is_an_installed_entry_point():
    entry = SEGMENTERS.entries()["command"]
    assert entry.target == "cmsbench.benchmark.downstream.segmenters:CommandSegmenter"
    from importlib import metadata

    assert any(ep.name == "command" for ep in metadata.entry_points(group="cmsbench.segmenters"))
