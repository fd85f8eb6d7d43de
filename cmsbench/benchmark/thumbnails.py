"""Small per-case pictures stored with every run: inputs, target, prediction and |error| of one slice.

For the first few test cases of a run (:func:`chosen_cases`: the first ``n`` test IDs in sorted order,
so every method of a task draws the same cases) the runner writes one PNG per case,
``<record stem>_thumbs/<case_id>.png`` beside the record, and records its path relative to the record's
folder in ``CaseRecord.thumbnail``. The leaderboard shows them; full volumes are still only written with
``--save-predictions``.

What a thumbnail shows (:func:`render`), panels left to right: every input (the task's order), the
target, the prediction, |prediction - target|, all on one axial slice (the third array axis) through the
lesion centre when the case has a lesion (the lesion slice nearest its centroid), else the middle slice.

Colour scales, so that the thumbnails of one case can be compared across methods:

- target and prediction share one grey window derived from the ground truth only: the target's
  1st-99th percentile inside the task's main region (the whole grid when that region cannot be built or
  is empty). Every method's thumbnail of a case therefore has the same window.
- each input has its own 1st-99th percentile window (inputs do not depend on the method either);
- |error| is drawn in magma from 0 to :data:`ERROR_FRACTION` of the task's data range (fixed: its value;
  window: its width), the same for every case of the task; a ground-truth-range task uses that fraction of
  the window above.
- the lesion is outlined in cyan on the inputs and the target (never on the prediction or the error).

Files are palette PNGs written with numpy + zlib (no timestamp, no software tag), byte-identical for
identical arrays; one ``tEXt`` chunk, keyword :data:`TEXT_KEY`, holds the panel names, slice and windows
as JSON (read back by :func:`read_info`). A panel is at most :data:`MAX_PANEL` pixels on a side (larger
slices are block-averaged), small slices are enlarged by pixel repetition to at least :data:`MIN_PANEL`;
a case is a few tens of KB, a run of three cases well under 500 KB.
"""

from __future__ import annotations

import json
import logging
import math
import re
import struct
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: Test cases drawn per run by default.
DEFAULT_CASES = 3
#: Largest panel side in pixels (larger slices are block-averaged down).
MAX_PANEL = 128
#: Smallest panel side in pixels (smaller slices are enlarged by pixel repetition).
MIN_PANEL = 64
#: |error| is drawn from 0 to this fraction of the task's data range.
ERROR_FRACTION = 0.1
#: Window percentiles of the target (and of each input).
PERCENTILES = (1.0, 99.0)
#: Keyword of the PNG text chunk holding the thumbnail's description.
TEXT_KEY = "cmsbench-thumbnail"
#: A thumbnail larger than this is drawn again with smaller panels.
MAX_BYTES = 150_000

# palette: 0..127 grey ramp, 128..253 magma, 254 white (separators), 255 cyan (lesion outline)
_GREY = np.arange(128)
_MAGMA0, _N_MAGMA = 128, 126
_WHITE, _CYAN = 254, 255


def _palette() -> bytes:
    from matplotlib import colormaps

    grey = np.repeat(np.round(_GREY * 255 / 127).astype(np.uint8)[:, None], 3, axis=1)
    magma = np.round(colormaps["magma"](np.linspace(0.0, 1.0, _N_MAGMA))[:, :3] * 255).astype(np.uint8)
    extra = np.array([[255, 255, 255], [0, 230, 255]], dtype=np.uint8)
    return np.concatenate([grey, magma, extra]).astype(np.uint8).tobytes()


# ---------------------------------------------------------------------------------------------- choices
def chosen_cases(test_ids: Sequence[str], n: int = DEFAULT_CASES) -> list[str]:
    """The cases a run draws: the first ``n`` test IDs in sorted order (the same for every method)."""
    return sorted(test_ids)[: max(0, int(n))]


def thumbs_dir(record_path: str | Path) -> Path:
    """``<record stem>_thumbs`` beside the record."""
    record_path = Path(record_path)
    return record_path.with_name(f"{record_path.stem}_thumbs")


def file_name(case_id: str) -> str:
    """A file-system-safe PNG name for a case ID."""
    return (re.sub(r"[^A-Za-z0-9_.-]+", "_", case_id).lstrip(".") or "case") + ".png"


def error_max(task: Any, window: tuple[float, float]) -> float:
    """Top of the |error| scale: :data:`ERROR_FRACTION` of the task's data range (of ``window`` for a
    ground-truth-range task or when the task states none)."""
    dr = getattr(task, "data_range", None)
    if dr is not None and dr.kind == "fixed" and dr.value:
        span = float(dr.value)
    elif dr is not None and dr.kind == "window" and dr.high is not None and dr.low is not None:
        span = float(dr.high - dr.low)
    else:
        span = float(window[1] - window[0])
    return ERROR_FRACTION * span if span > 0 else 1.0


def _region_mask(target: np.ndarray, masks: Mapping[str, Any], task: Any, case_id: str) -> np.ndarray | None:
    """The task's main region as the scorer builds it (None when it cannot be built)."""
    name = getattr(task, "main_region", None) or (list(getattr(task, "regions", ()) or []) or [None])[0]
    if name is None:
        return None
    try:
        from cmsbench.benchmark.metrics import regions as reg
        from cmsbench.benchmark.metrics.registry import REGIONS, get_region

        if name in REGIONS.entries():
            m = get_region(name).build(target, dict(masks), case_id=case_id, cache={})
        else:
            m = reg.build_region(name, target, dict(masks), case_id=case_id, cache={})
    except Exception:  # noqa: BLE001 - a picture never fails a case: fall back to the whole grid
        return None
    if m is None:
        return None
    m = np.asarray(m, dtype=bool)
    return m if m.shape == target.shape and m.any() else None


def _lesion(target: np.ndarray, masks: Mapping[str, Any], case_id: str) -> np.ndarray | None:
    try:
        from cmsbench.benchmark.metrics.regions import lesion_mask

        m = lesion_mask(dict(masks), target.shape, case_id)
    except Exception:  # noqa: BLE001
        return None
    return None if m is None or not np.any(m) else np.asarray(m, dtype=bool)


def choose_slice(shape: Sequence[int], lesion: np.ndarray | None) -> int:
    """The axial slice: the lesion slice nearest the lesion's centroid, else the middle slice."""
    depth = int(shape[2]) if len(shape) > 2 else 1
    if lesion is None or not lesion.any():
        return depth // 2
    per_slice = lesion.sum(axis=(0, 1))
    zs = np.flatnonzero(per_slice)
    centre = float((np.arange(depth) * per_slice).sum() / per_slice.sum())
    return int(zs[np.argmin(np.abs(zs - centre))])


def _window(values: np.ndarray) -> tuple[float, float]:
    values = np.asarray(values)
    if not np.issubdtype(values.dtype, np.floating):
        values = values.astype(np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (0.0, 1.0)
    lo, hi = (float(v) for v in np.percentile(values, PERCENTILES))
    if not hi > lo:
        lo, hi = float(values.min()), float(values.max())
    if not hi > lo:
        hi = lo + 1.0
    return (lo, hi)


# ----------------------------------------------------------------------------------------------- panels
def _resample(img: np.ndarray, max_panel: int, reduce: str = "mean") -> np.ndarray:
    """Block-reduce a 2D slice to at most ``max_panel`` pixels a side, or enlarge it to :data:`MIN_PANEL`."""
    h, w = img.shape
    down = math.ceil(max(h, w) / max_panel) if max(h, w) > max_panel else 1
    if down > 1:
        ph, pw = (-h) % down, (-w) % down
        img = np.pad(img, ((0, ph), (0, pw)), mode="edge")
        blocks = img.reshape(img.shape[0] // down, down, img.shape[1] // down, down)
        return blocks.max(axis=(1, 3)) if reduce == "max" else blocks.mean(axis=(1, 3))
    up = max(1, min(MIN_PANEL // max(1, min(h, w)), max_panel // max(1, max(h, w))))
    return np.repeat(np.repeat(img, up, axis=0), up, axis=1) if up > 1 else img


def _axial(volume: np.ndarray, z: int, depth: int) -> np.ndarray:
    """Slice ``z`` of ``depth`` (the target's) on ``volume``'s own depth, rotated for display."""
    volume = np.asarray(volume)
    if volume.ndim == 4 and volume.shape[3] == 1:
        volume = volume[..., 0]
    if volume.ndim == 2:
        return np.rot90(volume.astype(np.float64))
    own = volume.shape[2]
    k = z if own == depth else min(own - 1, int(round((z + 0.5) * own / max(depth, 1) - 0.5)))
    return np.rot90(volume[:, :, max(0, k)].astype(np.float64))


def _grey(img: np.ndarray, lo: float, hi: float) -> np.ndarray:
    scaled = (np.nan_to_num(img, nan=lo) - lo) / (hi - lo)
    return np.round(np.clip(scaled, 0.0, 1.0) * 127).astype(np.uint8)


def _magma(img: np.ndarray, top: float) -> np.ndarray:
    scaled = np.nan_to_num(img, nan=0.0) / top
    return (_MAGMA0 + np.round(np.clip(scaled, 0.0, 1.0) * (_N_MAGMA - 1))).astype(np.uint8)


def _outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` with a 4-neighbour outside it."""
    pad = np.pad(mask, 1, mode="constant")
    inner = pad[1:-1, 1:-1] & pad[:-2, 1:-1] & pad[2:, 1:-1] & pad[1:-1, :-2] & pad[1:-1, 2:]
    return mask & ~inner


def render(
    inputs: Mapping[str, Any],
    target: np.ndarray,
    prediction: np.ndarray,
    masks: Mapping[str, Any] | None = None,
    task: Any = None,
    case_id: str = "",
    max_panel: int = MAX_PANEL,
) -> tuple[np.ndarray, dict[str, Any]]:
    """The palette-index image (uint8, H x W) of one case and its description (panels, slice, windows)."""
    target = np.asarray(target)  # kept in their own dtype: only the drawn slices are converted
    prediction = np.asarray(prediction)
    if prediction.ndim == 4 and prediction.shape[3] == 1:
        prediction = prediction[..., 0]
    if target.ndim == 2:
        target, prediction = target[:, :, None], prediction.reshape(target.shape)[:, :, None]
    if prediction.shape != target.shape:
        raise ValueError(f"prediction shape {prediction.shape} differs from the target's {target.shape}")
    masks = dict(masks or {})
    region = _region_mask(target, masks, task, case_id)
    lesion = _lesion(target, masks, case_id)
    depth = target.shape[2]
    z = choose_slice(target.shape, lesion)
    window = _window(target[region] if region is not None else target.ravel())
    top = error_max(task, window)
    outline_src = _axial(lesion, z, depth) > 0.5 if lesion is not None else None

    panels: list[np.ndarray] = []
    names: list[str] = []
    input_windows: dict[str, list[float]] = {}

    def add(name: str, img: np.ndarray, kind: str, lo: float = 0.0, hi: float = 1.0, outline: bool = False) -> None:
        small = _resample(img, max_panel)
        index = _grey(small, lo, hi) if kind == "grey" else _magma(small, top)
        if outline and outline_src is not None and outline_src.shape == img.shape:
            edge = _outline(_resample(outline_src.astype(np.float64), max_panel, "max") > 0.5)
            index = np.where(edge, _CYAN, index).astype(np.uint8)
        panels.append(index)
        names.append(name)

    order = list(getattr(task, "inputs", ()) or [])
    names_in = [n for n in order if n in inputs] + sorted(n for n in inputs if n not in order)
    for name in names_in:
        vol = np.asarray(getattr(inputs[name], "data", inputs[name]))
        if vol.ndim == 4 and vol.shape[3] == 1:
            vol = vol[..., 0]
        if vol.ndim == 2:
            vol = vol[:, :, None]
        same_grid = vol.shape == target.shape
        lo, hi = _window(vol[region] if (same_grid and region is not None) else vol.ravel())
        input_windows[name] = [lo, hi]
        add(name, _axial(vol, z, depth), "grey", lo, hi, outline=same_grid)
    add("target", _axial(target, z, depth), "grey", *window, outline=True)
    add("prediction", _axial(prediction, z, depth), "grey", *window)
    add("|error|", np.abs(_axial(prediction, z, depth) - _axial(target, z, depth)), "magma")

    height = max(p.shape[0] for p in panels)
    gap = np.full((height, 2), _WHITE, dtype=np.uint8)
    row: list[np.ndarray] = []
    for k, p in enumerate(panels):
        if p.shape[0] < height:
            p = np.concatenate([p, np.full((height - p.shape[0], p.shape[1]), _WHITE, np.uint8)])
        row.extend([gap, p] if k else [p])
    image = np.concatenate(row, axis=1)
    region_name = getattr(task, "main_region", None) if region is not None else None
    info = {
        "case": case_id,
        "panels": names,
        "slice": {"axis": 2, "index": z, "of": depth, "through": "lesion centre" if lesion is not None else "middle"},
        "window": [round(window[0], 6), round(window[1], 6)],
        "window_from": (f"target percentiles {PERCENTILES[0]:g}-{PERCENTILES[1]:g} in "
                        + (f"region {region_name!r}" if region_name else "the whole grid")),
        "error_max": round(top, 6),
        "error_from": f"{ERROR_FRACTION:g} x the task's data range",
        "input_windows": {k: [round(a, 6), round(b, 6)] for k, (a, b) in input_windows.items()},
        "units": getattr(task, "units", None),
        "lesion_outline": lesion is not None,
    }
    return image, info


# ------------------------------------------------------------------------------------------------- PNG
def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def encode_png(index: np.ndarray, text: Mapping[str, str] | None = None) -> bytes:
    """A palette PNG of ``index`` (uint8, H x W) with the thumbnail palette; deterministic bytes."""
    index = np.ascontiguousarray(index, dtype=np.uint8)
    h, w = index.shape
    raw = np.concatenate([np.zeros((h, 1), np.uint8), index], axis=1).tobytes()  # filter 0 per row
    out = [b"\x89PNG\r\n\x1a\n", _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 3, 0, 0, 0)),
           _chunk(b"PLTE", _palette())]
    for key, value in (text or {}).items():
        out.append(_chunk(b"tEXt", key.encode("latin-1") + b"\0" + value.encode("latin-1", "replace")))
    out += [_chunk(b"IDAT", zlib.compress(raw, 9)), _chunk(b"IEND", b"")]
    return b"".join(out)


def read_info(path: str | Path) -> dict[str, Any] | None:
    """The description a thumbnail carries (its :data:`TEXT_KEY` text chunk); None if absent or unreadable."""
    try:
        data = Path(path).read_bytes()
    except OSError:
        return None
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    pos = 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        tag = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if tag == b"tEXt" and b"\0" in body:
            key, value = body.split(b"\0", 1)
            if key == TEXT_KEY.encode():
                try:
                    info = json.loads(value.decode("latin-1"))
                except ValueError:
                    return None
                return info if isinstance(info, dict) else None
        if tag in (b"IDAT", b"IEND"):
            break
        pos += 12 + length
    return None


def write(path: str | Path, inputs: Mapping[str, Any], target: np.ndarray, prediction: np.ndarray,
          masks: Mapping[str, Any] | None = None, task: Any = None, case_id: str = "") -> Path:
    """Render and write one case's thumbnail (atomically); smaller panels if it exceeds :data:`MAX_BYTES`."""
    max_panel = MAX_PANEL
    while True:
        image, info = render(inputs, target, prediction, masks, task, case_id, max_panel=max_panel)
        data = encode_png(image, {TEXT_KEY: json.dumps(info, sort_keys=True, ensure_ascii=True)})
        if len(data) <= MAX_BYTES or max_panel <= 32:
            break
        max_panel //= 2
    from cmsbench.results.codec import write_bytes_atomic

    return write_bytes_atomic(path, data)


def attach(entry: Any, *, case_id: str, case: Any, prediction: Any, task: Any, record_path: str | Path,
           test_ids: Sequence[str], n: int) -> None:
    """The runner's hook: for a chosen case write its thumbnail and set ``entry.thumbnail`` (relative to
    the record's folder). A failure is a warning on the case, never a failed case."""
    if n <= 0 or case_id not in chosen_cases(test_ids, n):
        return
    folder = thumbs_dir(record_path)
    try:
        target = np.asarray(case.target.data)
        pred = np.asarray(getattr(prediction, "data", prediction))
        path = write(folder / file_name(case_id), case.inputs, target, pred, case.masks, task, case_id)
    except Exception as exc:  # noqa: BLE001 - a picture never fails a case
        log.warning("case %s: no thumbnail (%s: %s)", case_id, type(exc).__name__, exc)
        entry.warnings.append(f"no thumbnail: {type(exc).__name__}: {exc}")
        return
    entry.thumbnail = f"{folder.name}/{path.name}"
