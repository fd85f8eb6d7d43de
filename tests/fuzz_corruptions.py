"""Seeded corruptions for the data-check fuzz test (``tests/test_fuzz.py``).

Each corruption damages (or, for the benign ones, harmlessly rewrites) files of a copied dataset in place
and returns what it did: a description and the names (file, folder, subject) a report must mention.
NIfTI headers are patched at their NIfTI-1 byte offsets and DICOM values as raw text, so that the
readers see exactly the bytes a broken download or a careless export would hold.
"""

from __future__ import annotations

import gzip
import os
import shutil
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cmsbench.tasks.io.nifti import write_nifti

# NIfTI-1 header offsets (bytes)
SCL_SLOPE, SCL_INTER, SFORM_ROWS = 112, 116, 280


@dataclass(frozen=True)
class Applied:
    """What a corruption did: ``any_of`` names one of which the report must mention, ``all_of`` all of them."""

    description: str
    any_of: tuple[str, ...] = ()
    all_of: tuple[str, ...] = ()


@dataclass
class Target:
    """The dataset copy a corruption works on, and how to find its files."""

    root: Path
    rng: np.random.Generator
    images: list[Path]  # image files the task reads
    labels: dict[Path, object]  # label files the task reads -> allowed labels (tuple or "nonnegative")
    bad_labels: tuple[int, ...]
    subject_of: Callable[[Path], str]
    subject_dirs: list[Path]
    rename: Callable[[Path, np.random.Generator], str]  # a subject folder's (or file's) non-matching name

    def pick(self, items: Sequence) -> object:
        return items[int(self.rng.integers(len(items)))]

    def any_file(self) -> Path:
        return self.pick(sorted([*self.images, *self.labels]))  # type: ignore[return-value]

    def named(self, path: Path, text: str, *, extra: tuple[str, ...] = ()) -> Applied:
        return Applied(f"{text} {path.relative_to(self.root)}", any_of=(path.name, self.subject_of(path), *extra))


# ----------------------------------------------------------------------------------------- NIfTI bytes
def nifti_raw(path: Path) -> bytes:
    raw = path.read_bytes()
    return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw


def write_raw(path: Path, raw: bytes) -> None:
    path.write_bytes(gzip.compress(raw, mtime=0) if path.name.endswith(".gz") else raw)


def patch_header(path: Path, values: dict[int, float]) -> None:
    """Overwrite float32 header fields (offset -> value) of a little-endian NIfTI-1 file."""
    raw = bytearray(nifti_raw(path))
    for offset, value in values.items():
        raw[offset:offset + 4] = struct.pack("<f", value)
    write_raw(path, bytes(raw))


def load_array(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib

    img = nib.Nifti1Image.from_bytes(nifti_raw(path))
    return np.ascontiguousarray(np.asanyarray(img.dataobj)), np.asarray(img.affine)  # C order: reshape(-1) is a view


def sform(path: Path) -> np.ndarray:
    return np.frombuffer(nifti_raw(path)[SFORM_ROWS:SFORM_ROWS + 48], "<f4").reshape(3, 4).copy()


def set_sform(path: Path, rows: np.ndarray) -> None:
    patch_header(path, {SFORM_ROWS + 4 * i: float(v) for i, v in enumerate(np.asarray(rows, np.float64).ravel())})


# ------------------------------------------------------------------------------- NIfTI corruptions
def truncate(t: Target) -> Applied:
    path = t.any_file()
    size = path.stat().st_size
    keep = int(size * float(t.rng.uniform(0.05, 0.95)))
    path.write_bytes(path.read_bytes()[:keep])
    return t.named(path, f"truncate to {keep} of {size} bytes:")


def flip_bytes(t: Target) -> Applied:
    """Alter 1-3 bytes after the 10-byte gzip header (deflate stream or trailer): the CRC must catch it."""
    path = t.any_file()
    original = path.read_bytes()
    content = gzip.decompress(original)
    while True:  # flips confined to the padding bits of the last deflate byte change nothing: draw again
        raw = bytearray(original)
        where = sorted(int(i) for i in t.rng.choice(np.arange(10, len(raw)), size=int(t.rng.integers(1, 4)),
                                                    replace=False))
        for i in where:
            raw[i] ^= int(t.rng.integers(1, 256))
        try:
            if gzip.decompress(bytes(raw)) == content:
                continue
        except Exception:  # refused by gzip (bad CRC, length or deflate data): what the reader must report
            pass
        break
    path.write_bytes(bytes(raw))
    return t.named(path, f"flip bytes at {where} of")


def empty(t: Target) -> Applied:
    path = t.any_file()
    path.write_bytes(b"")
    return t.named(path, "empty")


def missing(t: Target) -> Applied:
    path = t.any_file()
    path.unlink()
    return t.named(path, "delete")


def _rewrite_voxels(t: Target, value: float, what: str) -> Applied:
    path = t.any_file()
    data, affine = load_array(path)
    data = data.astype(np.float32, order="C")
    k = int(t.rng.integers(1, 40))
    flat = data.reshape(-1)
    flat[t.rng.choice(flat.size, size=k, replace=False)] = value
    write_nifti(path, data, affine)
    return t.named(path, f"set {k} voxel(s) to {what} in")


def nan_voxels(t: Target) -> Applied:
    return _rewrite_voxels(t, np.nan, "NaN")


def inf_voxels(t: Target) -> Applied:
    sign = float(t.pick([1.0, -1.0]))
    return _rewrite_voxels(t, sign * np.inf, f"{sign * np.inf}")


def nan_affine(t: Target) -> Applied:
    path = t.any_file()
    rows = sform(path)
    i, j = int(t.rng.integers(3)), int(t.pick([0, 1, 2, 3, 3]))  # translations twice as likely
    rows[i, j] = float(t.pick([np.nan, np.inf]))
    set_sform(path, rows)
    return t.named(path, f"sform[{i},{j}] = {rows[i, j]} in")


def singular_affine(t: Target) -> Applied:
    path = t.any_file()
    rows = sform(path)
    how = str(t.pick(["zero column", "repeated column", "zero matrix"]))
    if how == "zero column":
        rows[:, int(t.rng.integers(3))] = 0.0
    elif how == "repeated column":
        rows[:, 1] = rows[:, 0]
    else:
        rows[:, :3] = 0.0
    set_sform(path, rows)
    return t.named(path, f"singular affine ({how}) in")


def absurd_slope(t: Target) -> Applied:
    path = t.any_file()
    slope = float(t.pick([1e30, -1e25, np.inf, 1e12, 1e-12]))
    patch_header(path, {SCL_SLOPE: slope, SCL_INTER: 0.0})
    return t.named(path, f"scl_slope = {slope:g} in")


def absurd_inter(t: Target) -> Applied:
    path = t.any_file()
    inter = float(t.pick([1e30, -1e12, np.inf, np.nan]))
    patch_header(path, {SCL_SLOPE: 1.0, SCL_INTER: inter})
    return t.named(path, f"scl_inter = {inter:g} in")


def rgb_dtype(t: Target) -> Applied:
    path = t.any_file()
    data, affine = load_array(path)
    rgb = np.zeros(data.shape, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    grey = np.clip(np.asarray(data, np.float64), 0, 255).astype(np.uint8)
    for channel in "RGB":
        rgb[channel] = grey
    write_nifti(path, rgb, affine)
    return t.named(path, "store as RGB24")


def complex_dtype(t: Target) -> Applied:
    path = t.any_file()
    data, affine = load_array(path)
    write_nifti(path, (np.asarray(data, np.float32) * (1 + 0.5j)).astype(np.complex64), affine)
    return t.named(path, "store as complex64")


def four_d(t: Target) -> Applied:
    path = t.any_file()
    data, affine = load_array(path)
    write_nifti(path, np.stack([data, data], axis=-1), affine)
    return t.named(path, "store as 4D (two volumes)")


def wrong_shape(t: Target) -> Applied:
    path = t.any_file()
    data, affine = load_array(path)
    write_nifti(path, np.ascontiguousarray(data[:, :, :-1]), affine)
    return t.named(path, "drop the last slice of")


def shifted_affine(t: Target) -> Applied:
    path = t.any_file()
    rows = sform(path)
    axis, mm = int(t.rng.integers(3)), float(t.pick([0.5, 2.0, -7.5]))
    rows[axis, 3] += mm
    set_sform(path, rows)
    return t.named(path, f"shift the origin by {mm} mm along axis {axis} in")


def label_out_of_set(t: Target) -> Applied:
    path = t.pick(sorted(t.labels))
    value = int(t.pick(t.bad_labels))
    data, affine = load_array(path)
    data = data.astype(np.int16, order="C")
    k = int(t.rng.integers(1, 20))
    flat = data.reshape(-1)
    flat[t.rng.choice(flat.size, size=k, replace=False)] = value
    write_nifti(path, data, affine)
    return t.named(path, f"set {k} label voxel(s) to {value} in")


def label_fraction(t: Target) -> Applied:
    """A float segmentation with non-integer values (0.998 would become 0 under an integer cast)."""
    path = t.pick(sorted(t.labels))
    data, affine = load_array(path)
    data = data.astype(np.float32, order="C")
    labelled = np.flatnonzero(data.reshape(-1) > 0)
    k = int(t.rng.integers(1, min(20, labelled.size) + 1))
    flat = data.reshape(-1)
    chosen = t.rng.choice(labelled, size=k, replace=False)
    flat[chosen] -= 0.002
    write_nifti(path, data, affine)
    return t.named(path, f"store as float with {k} value(s) such as {float(flat[chosen[0]]):g} in")


def unmatched_rename(t: Target) -> Applied:
    """Rename a subject folder (or, for IXI, a file) to a name that does not match the layout."""
    old = t.pick(t.subject_dirs)
    new = old.with_name(t.rename(old, t.rng))
    old.rename(new)
    return Applied(f"rename {old.relative_to(t.root)} -> {new.name}", any_of=(new.name,))


def unmatched_copy(t: Target) -> Applied:
    """A stray copy of a subject under a name that does not match the layout (it must be listed)."""
    old = t.pick(t.subject_dirs)
    new = old.with_name(t.rename(old, t.rng))
    (shutil.copytree if old.is_dir() else shutil.copy2)(old, new)
    return Applied(f"copy {old.relative_to(t.root)} -> {new.name}", any_of=(new.name,))


# -------------------------------------------------------------------- benign (meaning kept) rewrites
def regzip(t: Target) -> Applied:
    path = t.pick(sorted(p for p in [*t.images, *t.labels] if p.name.endswith(".gz")))
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes()), compresslevel=9, mtime=123456789))
    return t.named(path, "re-compress (level 9, another gzip mtime)")


def uncompressed(t: Target) -> Applied:
    path = t.pick(sorted(p for p in [*t.images, *t.labels] if p.name.endswith(".gz")))
    path.with_suffix("").write_bytes(gzip.decompress(path.read_bytes()))
    path.unlink()
    return t.named(path, "store uncompressed (.nii)")


def float_scaled(t: Target) -> Applied:
    """The same values as float32 halves with scl_slope 2 (exact)."""
    path = t.pick(sorted(t.images))
    data, affine = load_array(path)
    write_nifti(path, np.asarray(data, np.float32) / 2, affine)
    patch_header(path, {SCL_SLOPE: 2.0, SCL_INTER: 0.0})
    return t.named(path, "store as float32 / 2 with scl_slope 2")


def float_labels_integral(t: Target) -> Applied:
    path = t.pick(sorted(t.labels))
    data, affine = load_array(path)
    write_nifti(path, np.asarray(data).astype(np.float32), affine)
    return t.named(path, "store the labels as float32 (integral values)")


def hidden_file(t: Target) -> Applied:
    folder = t.pick(sorted({p.parent for p in t.images}))
    (folder / ".DS_Store").write_bytes(bytes(t.rng.integers(0, 256, 64, dtype=np.uint8)))
    return Applied(f"add {folder.relative_to(t.root) / '.DS_Store'}")


def readme(t: Target) -> Applied:
    (t.root / "README.txt").write_text("downloaded from the official site\n")
    return Applied("add README.txt to the data root")


def touch(t: Target) -> Applied:
    path = t.any_file()
    os.utime(path, ns=(2 * 10**18, 2 * 10**18))
    return Applied(f"change the mtime of {path.relative_to(t.root)}")


# ------------------------------------------------------------------------------------------ DICOM
def _dcm_series(t: Target) -> list[Path]:
    return sorted({p.parent for p in t.images})


def _dcm_slice(t: Target, *, inner: bool = False) -> Path:
    files = sorted(t.pick(_dcm_series(t)).glob("*.dcm"))
    return t.pick(files[1:-1] if inner else files)  # type: ignore[return-value]


def _dcm_named(t: Target, path: Path, text: str) -> Applied:
    """A DICOM report must name the subject and the file or its series folder."""
    return Applied(f"{text} {path.relative_to(t.root)}", any_of=(path.name, path.parent.name),
                   all_of=(t.subject_of(path),))


_TAGS = {"RescaleSlope": (0x0028, 0x1053), "RescaleIntercept": (0x0028, 0x1052),
         "ImagePositionPatient": (0x0020, 0x0032), "ImageOrientationPatient": (0x0020, 0x0037),
         "PixelSpacing": (0x0028, 0x0030)}


def set_raw_ds(path: Path, keyword: str, text: str) -> None:
    """Replace the value of a DS element by raw ``text`` (explicit VR little endian), valid or not."""
    group, element = _TAGS[keyword]
    raw = path.read_bytes()
    head = struct.pack("<HH", group, element) + b"DS"
    at = raw.find(head, 132)
    assert at > 0, f"{keyword} not found in {path}"
    length = struct.unpack("<H", raw[at + 6:at + 8])[0]
    value = text.encode() + (b" " if len(text) % 2 else b"")
    path.write_bytes(raw[:at + 6] + struct.pack("<H", len(value)) + value + raw[at + 8 + length:])


def edit_dicom(path: Path, edit: Callable[[object], None]) -> None:
    import pydicom

    ds = pydicom.dcmread(str(path))
    edit(ds)
    ds.save_as(str(path))


def _raw_value(keyword: str, choices: Sequence[str]) -> Callable[[Target], Applied]:
    def corrupt(t: Target) -> Applied:
        path = _dcm_slice(t)
        text = str(t.pick(choices))
        set_raw_ds(path, keyword, text)
        return _dcm_named(t, path, f"{keyword} = {text!r} in")

    corrupt.__name__ = f"dcm_{keyword}"
    return corrupt


dcm_slope = _raw_value("RescaleSlope", ["0", "0.0", "nan", "inf", "-inf", "1e30", "abc"])
dcm_intercept = _raw_value("RescaleIntercept", ["1e30", "-1e30", "nan", "inf", "2e5", "xyz"])
dcm_ipp_text = _raw_value("ImagePositionPatient", ["abc\\1\\2", "1\\2", "nan\\0\\0", "1e999\\0\\0", "1\\2\\3\\4"])
dcm_iop_text = _raw_value("ImageOrientationPatient", ["x\\0\\0\\0\\1\\0", "1\\0\\0\\0\\1", "0\\0\\0\\0\\0\\0",
                                                      "1\\0\\0\\1\\0\\0"])
dcm_spacing_text = _raw_value("PixelSpacing", ["abc\\1", "0\\0", "-1\\1.5", "1.5", "nan\\1"])


def _dcm_delete(keyword: str) -> Callable[[Target], Applied]:
    def corrupt(t: Target) -> Applied:
        path = _dcm_slice(t)
        edit_dicom(path, lambda ds: delattr(ds, keyword))
        return _dcm_named(t, path, f"delete {keyword} from")

    corrupt.__name__ = f"dcm_no_{keyword}"
    return corrupt


dcm_no_ipp = _dcm_delete("ImagePositionPatient")
dcm_no_iop = _dcm_delete("ImageOrientationPatient")
dcm_no_spacing = _dcm_delete("PixelSpacing")


def dcm_truncate(t: Target) -> Applied:
    path = _dcm_slice(t)
    size = path.stat().st_size
    keep = int(size * float(t.rng.uniform(0.05, 0.95)))
    path.write_bytes(path.read_bytes()[:keep])
    return _dcm_named(t, path, f"truncate to {keep} of {size} bytes:")


def dcm_empty(t: Target) -> Applied:
    path = _dcm_slice(t)
    path.write_bytes(b"")
    return _dcm_named(t, path, "empty")


def dcm_missing_slice(t: Target) -> Applied:
    path = _dcm_slice(t)
    path.unlink()
    return Applied(f"delete {path.relative_to(t.root)}", any_of=(path.parent.name,), all_of=(t.subject_of(path),))


def dcm_duplicate_slice(t: Target) -> Applied:
    path = _dcm_slice(t)
    copy = path.with_name("1-999.dcm")
    shutil.copy2(path, copy)
    return Applied(f"duplicate {path.relative_to(t.root)} as {copy.name}", any_of=(path.parent.name, copy.name),
                   all_of=(t.subject_of(path),))


def dcm_ipp_shift(t: Target) -> Applied:
    path = _dcm_slice(t)
    mm = float(t.pick([1.3, -0.7, 40.0]))

    def shift(ds) -> None:
        pos = [float(v) for v in ds.ImagePositionPatient]
        ds.ImagePositionPatient = [pos[0], pos[1], pos[2] + mm]

    edit_dicom(path, shift)
    return Applied(f"move slice {path.relative_to(t.root)} by {mm} mm", any_of=(path.parent.name, path.name),
                   all_of=(t.subject_of(path),))


def _edit_series(t: Target, edit: Callable[[object], None]) -> Path:
    series = t.pick(_dcm_series(t))
    for path in sorted(series.glob("*.dcm")):
        edit_dicom(path, edit)
    return series  # type: ignore[return-value]


def dcm_patient_id(t: Target) -> Applied:
    series = t.pick(_dcm_series(t))
    subject = t.subject_of(series / "x.dcm")  # type: ignore[operator]
    other = str(t.pick([x for x in ("L999", "L100", "L101", "ANON") if x != subject]))
    for path in sorted(series.glob("*.dcm")):  # type: ignore[attr-defined]
        edit_dicom(path, lambda ds: setattr(ds, "PatientID", other))
    return Applied(f"PatientID = {other} in every slice of {series.relative_to(t.root)}", all_of=(subject,))


def dcm_description(t: Target) -> Applied:
    series = _edit_series(t, lambda ds: setattr(ds, "SeriesDescription", "Localizer"))
    return Applied(f"SeriesDescription = Localizer in {series.relative_to(t.root)}",
                   all_of=(t.subject_of(series / "x.dcm"),))


def dcm_missing_series(t: Target) -> Applied:
    series = t.pick(_dcm_series(t))
    shutil.rmtree(series)
    return Applied(f"delete the series {series.relative_to(t.root)}", all_of=(t.subject_of(series / "x.dcm"),))


def dcm_float_nan(t: Target) -> Applied:
    """Float Pixel Data holding NaN/inf: non-finite values after rescaling."""
    path = _dcm_slice(t)
    value = float(t.pick([np.nan, np.inf]))

    def to_float(ds) -> None:
        pixels = ds.pixel_array.astype(np.float32)
        pixels.reshape(-1)[t.rng.choice(pixels.size, size=3, replace=False)] = value
        del ds.PixelData, ds.BitsStored, ds.HighBit, ds.PixelRepresentation
        ds.BitsAllocated = 32
        ds.FloatPixelData = pixels.tobytes()

    edit_dicom(path, to_float)
    return _dcm_named(t, path, f"store float pixels with {value} in")


# benign DICOM rewrites
def dcm_shuffle_names(t: Target) -> Applied:
    series = t.pick(_dcm_series(t))
    files = sorted(series.glob("*.dcm"))
    for i, path in enumerate(files):
        path.rename(path.with_name(f"tmp{i}.tmp"))
    for i, j in enumerate(t.rng.permutation(len(files))):
        (series / f"tmp{i}.tmp").rename(files[int(j)])
    return Applied(f"shuffle the file names of {series.relative_to(t.root)}")


def dcm_rescale(t: Target) -> Applied:
    """Store 2 * (HU + 1024) with RescaleSlope 0.5 and RescaleIntercept -1024 (the same HU)."""

    def rescale(ds) -> None:
        hu = ds.pixel_array.astype(np.int32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        ds.PixelData = (2 * (hu + 1024)).astype(np.int16).tobytes()
        ds.RescaleSlope, ds.RescaleIntercept = 0.5, -1024

    series = _edit_series(t, rescale)
    return Applied(f"re-encode {series.relative_to(t.root)} with slope 0.5, intercept -1024")
