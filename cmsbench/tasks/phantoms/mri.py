"""MR signal physics: per-tissue relaxation times, spin-echo and inversion-recovery signal equations,
bias fields and Rician noise.

Relaxation values at 1.5 T follow the BrainWeb simulator's tissue table (Kwan, Evans & Pike, IEEE TMI
18(11), 1999; Cocosco et al., NeuroImage 5(4), 1997): T1/T2 in ms and relative proton density PD for
CSF 2569/329/1.0, GM 833/83/0.86, WM 500/70/0.77, fat 350/70/1.0, muscle/skin 900/47/1.0, bone marrow
500/70/0.77. Cortical bone has a very short T2 (~0.5 ms) and low PD (0.05), so it gives no signal at
clinical echo times. Tumour values are assumptions in the range reported for gliomas (oedema: long T1
and T2; necrosis: fluid-like). At 3 T, T1 values are lengthened (GM 1331, WM 832 ms after Wansapura et
al., JMRI 9(4), 1999; other tissues after Stanisz et al., MRM 54(3), 2005); T2 and PD are kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from cmsbench.tasks.phantoms.geometry import Grid, polynomial_field

#: Gadolinium T1 relaxivity (1/(mM s)) at 1.5 T, typical of gadobutrol/gadoterate.
GD_R1_PER_MM_S = 4.0


@dataclass(frozen=True)
class Relaxation:
    """Tissue MR parameters: T1 and T2 in ms, proton density relative to water (0..1)."""

    t1_ms: float
    t2_ms: float
    pd: float


RELAXATION_1P5T: dict[str, Relaxation] = {
    "air": Relaxation(1.0, 1.0, 0.0),
    "csf": Relaxation(2569.0, 329.0, 1.0),
    "gm": Relaxation(833.0, 83.0, 0.86),
    "wm": Relaxation(500.0, 70.0, 0.77),
    "fat": Relaxation(350.0, 70.0, 1.0),
    "skin": Relaxation(900.0, 47.0, 1.0),
    "bone": Relaxation(1000.0, 0.5, 0.05),
    "marrow": Relaxation(500.0, 70.0, 0.77),
    # glioma compartments (assumed values)
    "edema": Relaxation(1150.0, 170.0, 0.90),
    "enhancing": Relaxation(1000.0, 110.0, 0.88),
    "necrosis": Relaxation(2000.0, 250.0, 0.95),
}

#: Lesion sub-structure (assumed values; a table of its own so that the tissue table above, and the
#: random draws of every phantom jittering it, stay as they were): free fluid pooling in oedema (close to
#: CSF), and proteinaceous / haemorrhagic debris in the necrotic core (shorter T1 and T2 than the
#: fluid-like necrosis around it).
LESION_SUBSTRUCTURE_1P5T: dict[str, Relaxation] = {
    "lesion_fluid": Relaxation(3000.0, 400.0, 1.0),
    "necrotic_debris": Relaxation(1300.0, 90.0, 0.85),
}

_T1_3T = {
    "csf": 3700.0, "gm": 1331.0, "wm": 832.0, "fat": 380.0, "skin": 1410.0, "bone": 1200.0,
    "marrow": 590.0, "edema": 1700.0, "enhancing": 1550.0, "necrosis": 2900.0,
}  # fmt: skip


def relaxation_table(field_t: float = 1.5) -> dict[str, Relaxation]:
    """Per-tissue relaxation parameters at 1.5 T or 3 T."""
    if abs(field_t - 1.5) < 1e-6:
        return dict(RELAXATION_1P5T)
    if abs(field_t - 3.0) < 1e-6:
        return {k: replace(v, t1_ms=_T1_3T.get(k, v.t1_ms)) for k, v in RELAXATION_1P5T.items()}
    raise ValueError(f"relaxation values are tabulated for 1.5 T and 3 T only, got {field_t} T")


def jitter_table(table: Mapping[str, Relaxation], rng: np.random.Generator, rel: float = 0.05) -> dict[str, Relaxation]:
    """Per-subject tissue variability: every T1, T2 and PD scaled by ~N(1, rel) (PD capped at 1)."""
    out = {}
    for name in sorted(table):
        r = table[name]
        f = rng.normal(1.0, rel, size=3).clip(1 - 3 * rel, 1 + 3 * rel)
        out[name] = Relaxation(r.t1_ms * f[0], r.t2_ms * f[1], min(1.0, r.pd * f[2]))
    return out


@dataclass(frozen=True)
class Sequence:
    """An MR pulse sequence: spin echo (``se``) or inversion recovery (``ir``); times in ms."""

    name: str
    kind: str
    tr_ms: float
    te_ms: float
    ti_ms: float | None = None

    def signal(self, r: Relaxation, t1_ms: float | None = None) -> float:
        """Steady-state magnitude signal of a tissue (PD units).

        Spin echo: S = PD (1 - exp(-TR/T1)) exp(-TE/T2). Inversion recovery (FLAIR):
        S = PD |1 - 2 exp(-TI/T1) + exp(-TR/T1)| exp(-TE/T2).
        """
        t1 = r.t1_ms if t1_ms is None else t1_ms
        e2 = np.exp(-self.te_ms / r.t2_ms)
        if self.kind == "se":
            return float(r.pd * (1.0 - np.exp(-self.tr_ms / t1)) * e2)
        if self.kind == "ir":
            assert self.ti_ms is not None
            return float(r.pd * abs(1.0 - 2.0 * np.exp(-self.ti_ms / t1) + np.exp(-self.tr_ms / t1)) * e2)
        raise ValueError(f"unknown sequence kind {self.kind!r}")


def flair_null_ti(t1_csf_ms: float, tr_ms: float) -> float:
    """Inversion time (ms) that nulls a tissue of longitudinal relaxation ``t1_csf_ms`` at this TR."""
    return float(t1_csf_ms * np.log(2.0 / (1.0 + np.exp(-tr_ms / t1_csf_ms))))


def ensure_hyperintense(table: Mapping[str, Relaxation], seq: Sequence, tissue: str, over: str,
                        ratio: float) -> dict[str, Relaxation]:
    """``table`` with ``tissue``'s T2 lengthened, where needed, until its signal in ``seq`` is at least
    ``ratio`` x that of ``over`` (the oedema of a glioma is hyperintense on FLAIR by definition; per-subject
    jitter must not undo that). The signal grows with T2 through exp(-TE/T2) only."""
    out = dict(table)
    have, want = seq.signal(table[tissue]), ratio * seq.signal(table[over])
    if have >= want or have <= 0:
        return out
    r = table[tissue]
    decay = min(np.exp(-seq.te_ms / r.t2_ms) * want / have, 0.999)
    out[tissue] = replace(r, t2_ms=float(-seq.te_ms / np.log(decay)))
    return out


def t1_with_gadolinium(t1_ms: float, conc_mm: float, r1: float = GD_R1_PER_MM_S) -> float:
    """T1 (ms) shortened by a gadolinium concentration (mM): 1/T1' = 1/T1 + r1 C."""
    return 1000.0 / (1000.0 / t1_ms + r1 * conc_mm)


def mr_image(
    fractions: Mapping[str, np.ndarray],
    table: Mapping[str, Relaxation],
    seq: Sequence,
    gadolinium_mm: Mapping[str, float] | None = None,
) -> np.ndarray:
    """Noise-free magnitude image (PD units): tissue signals mixed by partial-volume fractions."""
    gd = gadolinium_mm or {}
    out = None
    for name, frac in fractions.items():
        r = table[name]
        t1 = t1_with_gadolinium(r.t1_ms, gd[name]) if gd.get(name, 0.0) > 0 else None
        s = seq.signal(r, t1)
        out = frac * np.float32(s) if out is None else out + frac * np.float32(s)
    assert out is not None
    return out.astype(np.float32)


def bias_field(grid: Grid, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Smooth multiplicative receive-coil bias: exp(strength * g), g a unit-std quadratic field."""
    return np.exp(strength * polynomial_field(grid, rng)).astype(np.float32)


def rician(signal: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Magnitude of a complex signal with Gaussian noise of std ``sigma`` per channel:
    sqrt((s + n1)^2 + n2^2)."""
    n1 = rng.normal(0.0, sigma, size=signal.shape).astype(np.float32)
    n2 = rng.normal(0.0, sigma, size=signal.shape).astype(np.float32)
    return np.sqrt((signal + n1) ** 2 + n2**2).astype(np.float32)


def to_int16(img: np.ndarray, gain: float) -> np.ndarray:
    """Scale by ``gain``, round and clip to [0, 32767] as int16 (how scanners store magnitude)."""
    return np.clip(np.rint(img * gain), 0, 32767).astype(np.int16)
