"""The task registry: built-in tasks and third-party ones through the ``cmsbench.tasks`` entry points.

``get_task`` also accepts the path of a user-defined task file (``.toml``), so
``cmsbench run --task path/to/task.toml`` works like a built-in name.
"""

from __future__ import annotations

from pathlib import Path

from cmsbench.errors import TaskSpecError
from cmsbench.registry import Registry
from cmsbench.tasks.spec import TaskSpec

_BUILTIN = {
    name: f"cmsbench.tasks.builtin:{attr}"
    for name, attr in (
        ("brats_flair", "BRATS_FLAIR"),
        ("ixi_t1_t2", "IXI_T1_T2"),
        ("ixi_t2_pd", "IXI_T2_PD"),
        ("ixi_t1_t2_xsite", "IXI_T1_T2_XSITE"),
        ("ldpet", "LDPET"),
        ("ldct", "LDCT"),
        ("mr_ct", "MR_CT"),
        ("ixi_sr_t2", "IXI_SR_T2"),
        ("gbca_lowdose", "GBCA_LOWDOSE"),
        ("brats_missing", "BRATS_MISSING"),
        ("ct_kernel", "CT_KERNEL"),
    )
}

TASKS: Registry[TaskSpec] = Registry("cmsbench.tasks", "task", _BUILTIN)


def get_task(name_or_path: str) -> TaskSpec:
    """A task by registry name or by the path of a task TOML file."""
    if name_or_path.endswith(".toml") or Path(name_or_path).suffix == ".toml":
        from cmsbench.tasks.user_task import load_task_file

        return load_task_file(name_or_path)
    spec = TASKS.load(name_or_path)
    if not isinstance(spec, TaskSpec):
        raise TaskSpecError(f"entry point for task {name_or_path!r} is not a TaskSpec but {type(spec).__name__}")
    if spec.name != name_or_path:
        raise TaskSpecError(f"task registered as {name_or_path!r} calls itself {spec.name!r}; the names must match")
    return spec


def list_tasks() -> list[TaskSpec]:
    """Every registered task spec (plugins that fail to load are logged and skipped)."""
    return [get_task(name) for name in TASKS.load_all()]
