"""Train every learned baseline for about a minute on a GPU and print one table.

    python benchmarks/gpu_learned.py                 # GPU: ~45 s of training per method, < 8 minutes on an H100
    python benchmarks/gpu_learned.py --quick         # CPU smoke check (tiny data, a few seconds per method)

Each method trains on one phantom task (brats_flair; redcnn on ldct; cyclegan on mr_ct) with a
configuration between ``small`` and ``paper`` (the ``paper`` preset with narrower networks and a time
budget), is evaluated on the phantom test split with the cmsbench scorer, and reports: quality (PSNR in
dB, or MAE in HU for mr_ct), training throughput (slices/s), inference throughput (volumes/s, after a
warm-up, CUDA-synchronised), and peak GPU memory (GiB, training and inference together).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

#: (method name, class, task, region, metric, options for the GPU run)
METHODS: list[tuple[str, str, str, str, str, dict]] = [
    ("unet", "UNet", "brats_flair", "brain", "psnr",
     {"config": "paper", "features": [32, 64, 128, 256, 512, 32], "batch_size": 32, "lr": 1e-3}),
    ("pix2pix", "Pix2Pix", "brats_flair", "brain", "psnr",
     {"config": "paper", "channels": [32, 64, 128, 256, 256], "batch_size": 16, "lr": 5e-4, "ndf": 32,
      "lr_schedule": "cosine"}),
    ("resvit", "ResViT", "brats_flair", "brain", "psnr",
     {"config": "paper", "ngf": 32, "n_blocks": 6, "vit_positions": [0, 3], "hidden": 256, "layers": 4, "heads": 8,
      "mlp": 512, "patch": 2, "batch_size": 16, "lr": 5e-4, "lr_schedule": "cosine"}),
    ("cond_ddpm", "CondDDPM", "brats_flair", "brain", "psnr",
     {"config": "paper", "channels": [32, 64, 128], "attention_levels": [False, False, True], "batch_size": 32,
      "lr": 5e-4, "sampling_steps": 10}),
    ("cola_diff", "ColaDiff", "brats_flair", "brain", "psnr",
     {"config": "paper", "ae_channels": [32, 64], "channels": [64, 128], "attention_levels": [False, True],
      "batch_size": 32, "lr": 5e-4, "ae_lr": 1e-3, "sampling_steps": 10}),
    ("redcnn", "RedCNN", "ldct", "body", "psnr", {"config": "paper", "batch_size": 32, "lr": 3e-4}),
    ("cyclegan", "CycleGAN", "mr_ct", "body", "mae",
     {"config": "paper", "ngf": 32, "n_blocks": 6, "ndf": 32, "batch_size": 8, "lr": 5e-4, "lr_schedule": "cosine"}),
]
PHANTOMS = {"brats_flair": "brats", "ldct": "ldct", "mr_ct": "synthrad"}
#: options of the CPU smoke check: tiny networks, a few steps
QUICK = {
    "unet": {"config": "small", "features": [8, 8, 16, 16, 32, 8]},
    "pix2pix": {"config": "small", "features": [8, 8, 16, 16, 32, 8], "ndf": 8},
    "resvit": {"config": "small", "ngf": 8, "n_blocks": 2, "hidden": 32, "layers": 1, "heads": 2, "mlp": 32},
    "cond_ddpm": {"config": "small", "channels": [8, 16], "attention_levels": [False, False], "norm_groups": 4,
                  "sampling_steps": 2},
    "cola_diff": {"config": "small", "ae_channels": [8, 8], "channels": [16, 16], "attention_levels": [False, False],
                  "norm_groups": 4, "sampling_steps": 2, "ae_steps": 10},
    "redcnn": {"config": "small", "filters": 8},
    "cyclegan": {"config": "small", "ngf": 8, "n_blocks": 1, "ndf": 8},
}


def _generate(args: tuple[str, str, int]) -> str:
    dataset, out, subjects = args
    from cmsbench.tasks.phantoms import synthesize

    return str(synthesize(dataset, Path(out), subjects=subjects, seed=0))


def make_data(root: Path, subjects: int, tasks: set[str]) -> dict[str, Path]:
    """Generate the phantom datasets the chosen tasks need, in parallel processes."""
    jobs = {t: (PHANTOMS[t], str(root / PHANTOMS[t]), subjects) for t in tasks}
    with ProcessPoolExecutor(max_workers=len(jobs)) as pool:
        done = dict(zip(jobs, pool.map(_generate, jobs.values()), strict=True))
    return {t: Path(p) for t, p in done.items()}


def load_split(task_name: str, root: Path, max_test: int | None) -> tuple[object, list, list, list]:
    from cmsbench.tasks.dataset import open_dataset
    from cmsbench.tasks.registry import get_task

    task = get_task(task_name)
    ds = open_dataset(task, root, use_cache=False)
    cases = {s: [ds.load_case(c) for c in ds.case_ids(s)] for s in ("train", "val", "test")}
    test = cases["test"][:max_test] if max_test else cases["test"]
    return task, cases["train"], cases["val"], test


def bench_one(name: str, cls_name: str, task, train: list, val: list, test: list, region: str, metric: str,
              options: dict, device: str) -> dict:
    import torch

    import cmsbench.baselines.learned as learned
    from cmsbench.benchmark.scorer import score_case

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    method = getattr(learned, cls_name)(**options)
    t0 = time.perf_counter()
    method.fit(train, val, device=device, seed=0)
    fit_s = time.perf_counter() - t0
    info = method.train_info
    torch.manual_seed(0)
    method.predict(test[0].inputs)  # warm-up
    if cuda:
        torch.cuda.synchronize()
    scores, t_pred = [], 0.0
    for i, case in enumerate(test):
        torch.manual_seed(i)
        t = time.perf_counter()
        pred = method.predict(case.inputs)
        if cuda:
            torch.cuda.synchronize()
        t_pred += time.perf_counter() - t
        s = score_case(np.asarray(case.target.data), np.asarray(pred.data), case.masks, task, case_id=case.case_id)
        scores.append(s.value(region, metric))
    return {
        "method": name, "task": task.name, "metric": f"{metric} ({region})", "value": float(np.nanmean(scores)),
        "fit_s": fit_s, "train_steps": info.get("steps"), "train_slices_per_s": info.get("slices_per_s"),
        "infer_volumes_per_s": len(test) / max(t_pred, 1e-9),
        "peak_gpu_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan"),
        "parameters": sum(v for k, v in info.get("parameters", {}).items()),
        "nfe": getattr(method, "last_nfe", None),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="CPU smoke check: tiny data and networks")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument("--seconds", type=float, default=45.0, help="training budget per method (GPU run)")
    parser.add_argument("--subjects", type=int, default=None, help="phantom subjects per dataset")
    parser.add_argument("--methods", default="", help="comma-separated subset of method names")
    parser.add_argument("--data", default="", help="folder for the phantom data (default: a temp folder)")
    parser.add_argument("--json", default="", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)

    import torch

    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not args.quick:
        print("no GPU: running the --quick smoke check instead", file=sys.stderr)
        args.quick = True
    if device == "cpu":
        torch.set_num_threads(max(1, min(4, torch.get_num_threads())))
    if device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    chosen = [m for m in METHODS if not args.methods or m[0] in args.methods.split(",")]
    subjects = args.subjects or (8 if args.quick else 40)
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="cmsbench-gpu-learned-") as tmp:
        data_root = Path(args.data) if args.data else Path(tmp)
        roots = make_data(data_root, subjects, {m[2] for m in chosen})
        print(f"# phantom data ({subjects} subjects per dataset) ready in {time.perf_counter() - t_start:.0f} s",
              flush=True)
        splits = {t: load_split(t, r, 2 if args.quick else None) for t, r in roots.items()}
        rows = []
        for name, cls_name, task_name, region, metric, options in chosen:
            task, train, val, test = splits[task_name]
            if args.quick:
                opts = {**QUICK[name], "steps": 3, "batch_size": 2}
                if name == "cola_diff":
                    opts["ae_steps"] = 3
            else:
                opts = {**options, "train_seconds": args.seconds, "epochs": 10_000}
                if name == "cola_diff":
                    opts["ae_epochs"] = 10_000
            try:
                row = bench_one(name, cls_name, task, train, val, test, region, metric, opts, device)
            except Exception as exc:  # keep going: one broken method must not hide the others
                row = {"method": name, "task": task_name, "error": f"{type(exc).__name__}: {exc}"}
            rows.append(row)
            print(json.dumps(row), flush=True)
    print()
    print(f"device: {torch.cuda.get_device_name() if device.startswith('cuda') else 'cpu'}; "
          f"training budget {'(quick)' if args.quick else f'{args.seconds:.0f} s'} per method; "
          f"total {time.perf_counter() - t_start:.0f} s")
    header = f"{'method':<10} {'task':<12} {'quality':>18} {'train slices/s':>15} {'infer vol/s':>12} {'peak GiB':>9} {'params':>10}"
    print(header)
    print("-" * len(header))
    for r in rows:
        if "error" in r:
            print(f"{r['method']:<10} {r['task']:<12} ERROR {r['error']}")
            continue
        unit = "HU" if r["metric"].startswith("mae") else "dB"
        quality = f"{r['value']:.2f} {unit} {r['metric'].split()[0]}"
        print(f"{r['method']:<10} {r['task']:<12} {quality:>18} {r['train_slices_per_s']:>15.0f} "
              f"{r['infer_volumes_per_s']:>12.2f} {r['peak_gpu_gib']:>9.2f} {r['parameters']:>10d}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
