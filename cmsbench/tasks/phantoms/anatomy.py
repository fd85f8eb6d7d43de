"""Head anatomy: the MNI152 2009a template's tissue maps, a skull and scalp built around the brain, and
per-subject random geometry (affine jitter + smooth elastic deformation) sampled onto any voxel grid.

Tissue fractions are partial-volume fractions in [0, 1] that sum to 1 in every voxel. Tissue names:
``air, csf, gm, wm, fat, skin, bone, marrow`` (``skin`` = skin, galea and temporal muscle; ``bone`` =
cortical bone of the inner and outer tables; ``marrow`` = the diploe between them).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from cmsbench.errors import DataError
from cmsbench.tasks.phantoms import geometry as geo

logger = logging.getLogger(__name__)

TEMPLATE_FILES = {
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
}
TISSUES: tuple[str, ...] = ("air", "csf", "gm", "wm", "fat", "skin", "bone", "marrow")
_CHANNELS = ("csf", "gm", "wm", "brain", "dist")
_PAD_MM = 24.0
#: Approximate centre of the brain in MNI space (mm).
BRAIN_CENTER_MM = np.array([0.0, -18.0, 12.0])


def template_dir() -> Path:
    """The folder holding nilearn's MNI152 2009a files, found without importing nilearn."""
    spec = importlib.util.find_spec("nilearn")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for loc in locations:
        folder = Path(loc) / "datasets" / "data"
        if all((folder / name).is_file() for name in TEMPLATE_FILES.values()):
            return folder
    raise DataError(
        "the phantom generator needs the MNI152 2009a template shipped with nilearn "
        f"({', '.join(TEMPLATE_FILES.values())} under nilearn/datasets/data/), but "
        + ("nilearn is not installed" if spec is None else f"they were not found in {locations}")
        + "; install nilearn (`pip install nilearn`), a cmsbench dependency"
    )


@dataclass(frozen=True)
class Template:
    """Template tissue maps on an isotropic grid.

    Attributes:
        channels: (X, Y, Z, 5) float32, channels last: CSF, GM and WM fractions inside the brain mask, the brain-mask
            fraction, and the signed distance (mm) to the smooth brain envelope (positive outside).
        affine: voxel-to-world (MNI, RAS+, mm).
        resolution_mm: voxel size in mm.
    """

    channels: np.ndarray
    affine: np.ndarray
    resolution_mm: int

    @property
    def box(self) -> tuple[np.ndarray, np.ndarray]:
        """World bounding box (lo, hi) in mm."""
        lo = self.affine[:3, 3]
        hi = lo + (np.asarray(self.channels.shape[:3]) - 1) * self.resolution_mm
        return lo, hi


def _block_mean(arr: np.ndarray, f: int) -> np.ndarray:
    if f == 1:
        return arr
    pad = [(0, (-n) % f) for n in arr.shape]
    arr = np.pad(arr, pad)
    x, y, z = (n // f for n in arr.shape)
    return arr.reshape(x, f, y, f, z, f).mean(axis=(1, 3, 5))


@functools.lru_cache(maxsize=2)
def load_template(resolution_mm: int = 2) -> Template:
    """The template's tissue maps at ``resolution_mm`` (1 or 2 mm), computed once per process."""
    import nibabel as nib

    if resolution_mm not in (1, 2):
        raise ValueError(f"template resolution must be 1 or 2 mm, got {resolution_mm}")
    folder = template_dir()
    imgs = {k: nib.load(str(folder / v)) for k, v in TEMPLATE_FILES.items()}
    aff0 = imgs["t1"].affine
    t1 = np.asarray(imgs["t1"].dataobj, dtype=np.float32)
    gm = np.asarray(imgs["gm"].dataobj, dtype=np.float32) / 255.0
    wm = np.asarray(imgs["wm"].dataobj, dtype=np.float32) / 255.0
    brain = (t1 > 0).astype(np.float32)
    gm *= brain
    wm *= brain
    scale = np.minimum(1.0, 1.0 / np.maximum(gm + wm, 1e-6))
    gm *= scale
    wm *= scale
    csf = np.clip(brain - gm - wm, 0.0, 1.0)
    f = resolution_mm
    maps = [_block_mean(a, f) for a in (csf, gm, wm, brain)]
    pad = int(round(_PAD_MM / f))
    maps = [np.pad(m, pad) for m in maps]
    aff = aff0 @ np.array([[f, 0, 0, (f - 1) / 2], [0, f, 0, (f - 1) / 2], [0, 0, f, (f - 1) / 2], [0, 0, 0, 1]])
    aff[:3, 3] -= pad * f
    # Smooth brain envelope: morphological closing (radius 8 mm, via distance transforms), smoothing,
    # hole filling. The skull and scalp are laid out as distance shells outside it.
    mask = maps[3] >= 0.5
    r = 8.0
    dil = ndimage.distance_transform_edt(~mask, sampling=f) <= r
    closed = ndimage.distance_transform_edt(dil, sampling=f) > r
    env = ndimage.gaussian_filter(closed.astype(np.float32), 2.0 / f) >= 0.5
    env = ndimage.binary_fill_holes(env)
    dist = ndimage.distance_transform_edt(~env, sampling=f) - ndimage.distance_transform_edt(env, sampling=f)
    channels = np.stack([*maps, dist.astype(np.float32)], axis=-1).astype(np.float32)
    logger.debug("template at %d mm: shape %s", f, channels.shape[:3])
    return Template(channels, aff, f)


@dataclass(frozen=True)
class Tissues:
    """Tissue fractions on a grid.

    Attributes:
        fractions: tissue name -> float32 array of partial-volume fractions (sum 1 per voxel).
        brain: float32 fraction of the voxel inside the template's brain mask (skull-stripping mask).
    """

    fractions: dict[str, np.ndarray]
    brain: np.ndarray

    def __getitem__(self, name: str) -> np.ndarray:
        return self.fractions[name]

    def total(self, *names: str) -> np.ndarray:
        """Sum of the named fractions."""
        return np.sum([self.fractions[n] for n in names], axis=0)

    def replace(self, new: dict[str, np.ndarray]) -> Tissues:
        """Insert new tissues (name -> fraction); existing ones shrink proportionally to make room."""
        added = np.sum(list(new.values()), axis=0)
        keep = np.clip(1.0 - added, 0.0, 1.0)
        fr = {k: (v * keep).astype(np.float32) for k, v in self.fractions.items()}
        for k, v in new.items():
            fr[k] = fr.get(k, 0) + v.astype(np.float32)
        return Tissues(fr, self.brain)


@dataclass(frozen=True)
class SubjectAnatomy:
    """One subject's head geometry.

    Attributes:
        head_to_world: 4x4 map from template (head) coordinates to scanner world coordinates (mm).
        fields: smooth random fields in template coordinates: channels 0-2 the elastic displacement
            (mm), channel 3 the skull and scalp thickness modulation (unitless, mean 0).
        layers: thickness (mm) of the layers outside the brain envelope, inside out.
        resolution_mm: template resolution used for sampling.
    """

    head_to_world: np.ndarray
    fields: geo.SmoothField
    layers: dict[str, float]
    resolution_mm: int


def draw_anatomy(rng: np.random.Generator, resolution_mm: int = 2) -> SubjectAnatomy:
    """Draw a random subject: global scale 0.94-1.05 (+-2 % per axis), rotation ~3 deg, translation
    ~3 mm, elastic deformation (~3 mm, 40 mm correlation) and skull/scalp layer thicknesses."""
    tpl = load_template(resolution_mm)
    lo, hi = tpl.box
    scale = rng.uniform(0.94, 1.05) * rng.normal(1.0, 0.02, size=3)
    rot = geo.rotation_matrix(rng.normal(0.0, [3.0, 2.0, 3.0]))
    shift = rng.normal(0.0, 3.0, size=3)
    head_to_world = geo.about_point(rot @ np.diag(scale), BRAIN_CENTER_MM, shift)
    fields = geo.smooth_random_field(rng, lo, hi, 4, control_mm=40.0, amplitude=1.0)
    fields = geo.SmoothField(fields.values * np.array([3.0, 3.0, 3.0, 1.0], np.float32), fields.origin, fields.step)
    layers = {
        "csf": rng.uniform(1.5, 2.5),
        "inner_table": rng.uniform(1.8, 2.6),
        "diploe": rng.uniform(2.0, 4.0),
        "outer_table": rng.uniform(1.8, 2.6),
        "fat": rng.uniform(2.0, 4.0),
        "skin": rng.uniform(2.5, 4.0),
    }
    return SubjectAnatomy(head_to_world, fields, layers, resolution_mm)


def _soft(x: np.ndarray, width: float) -> np.ndarray:
    return np.clip(x / width + 0.5, 0.0, 1.0)


def _fractions_at(anat: SubjectAnatomy, world: np.ndarray, world_to_head: np.ndarray, fld: np.ndarray) -> np.ndarray:
    """(len(TISSUES)+1, N) tissue fractions and brain fraction at world points (N, 3); ``fld`` (N, 4)
    holds the subject's smooth fields (displacement, thickness) at those points."""
    tpl = load_template(anat.resolution_mm)
    head = geo.apply(world_to_head, world)
    tcoord = head + fld[:, :3]
    vox = geo.apply(np.linalg.inv(tpl.affine), tcoord)
    # the template is padded with zeros (24 mm), so edge-clamped sampling is zero outside the head
    sampled = geo.trilinear(tpl.channels, vox)
    ch = {name: sampled[:, i] for i, name in enumerate(_CHANNELS)}
    d = ch["dist"]
    mod = np.clip(1.0 + 0.25 * fld[:, 3], 0.6, 1.5)
    # Temporal muscle: a thicker soft-tissue layer on the sides of the head, above the ears.
    rel = head - BRAIN_CENTER_MM
    lateral = (np.abs(rel[:, 0]) / np.maximum(np.linalg.norm(rel, axis=1), 1.0)) ** 2
    temporal = lateral * np.exp(-0.5 * ((rel[:, 2] + 5.0) / 25.0) ** 2)
    L = anat.layers
    e0 = L["csf"]
    e1 = e0 + L["inner_table"] * mod
    e2 = e1 + L["diploe"] * mod
    e3 = e2 + L["outer_table"] * mod
    e4 = e3 + L["fat"] * mod
    e5 = e4 + L["skin"] * mod + 9.0 * temporal
    w = 1.0
    s0, s1, s2, s3, s4, s5 = (_soft(e - d, w) for e in (e0, e1, e2, e3, e4, e5))
    bm = np.clip(ch["brain"], 0.0, 1.0)
    out = 1.0 - bm
    gm = np.clip(ch["gm"], 0.0, 1.0)
    wm = np.clip(ch["wm"], 0.0, 1.0)
    csf = np.clip(bm - gm - wm, 0.0, 1.0) + out * s0
    fr = {
        "air": out * (1.0 - s5),
        "csf": csf,
        "gm": gm,
        "wm": wm,
        "fat": out * (s4 - s3),
        "skin": out * (s5 - s4),
        "bone": out * (s1 - s0 + s3 - s2),
        "marrow": out * (s2 - s1),
    }
    return np.stack([fr[t] for t in TISSUES] + [bm])


def tissue_fractions(
    anat: SubjectAnatomy,
    grid: geo.Grid,
    motion: np.ndarray | None = None,
    sample_mm: float | None = None,
    chunk: int = 1_500_000,
) -> Tissues:
    """Tissue fractions of subject ``anat`` on ``grid``, with partial volume from sub-voxel sampling.

    ``motion`` (4x4, world mm) is a rigid head movement applied before this acquisition: the scanner
    sees the head at ``motion @ x`` for head point ``x`` (used for IXI's separately acquired T1).
    ``sample_mm``: sub-voxel samples are at most about this far apart (default: the template
    resolution); partial-volume fractions are their averages.
    """
    world_to_head = np.linalg.inv(anat.head_to_world)
    if motion is not None:
        world_to_head = world_to_head @ np.linalg.inv(motion)
    offsets = grid.subsample_offsets(float(sample_mm or anat.resolution_mm))
    acc = np.zeros((len(TISSUES) + 1, grid.n_voxels), dtype=np.float64)
    base = grid.world_points()
    spacing = np.asarray(grid.spacing)
    for start in range(0, grid.n_voxels, chunk):
        centres = base[start : start + chunk]
        # the fields vary on a 40 mm scale: evaluate them once per voxel, not per sub-sample
        fld = anat.fields(geo.apply(world_to_head, centres))
        for off in offsets:
            pts = centres + off * spacing
            acc[:, start : start + chunk] += _fractions_at(anat, pts, world_to_head, fld)
    acc /= len(offsets)
    fr = {t: acc[i].reshape(grid.shape).astype(np.float32) for i, t in enumerate(TISSUES)}
    return Tissues(fr, acc[-1].reshape(grid.shape).astype(np.float32))
