"""Dataset adapters: one per official layout. Looked up by the name a task spec gives."""

from __future__ import annotations

from cmsbench.errors import UnknownNameError
from cmsbench.tasks.adapters.base import CaseRef, DatasetAdapter, Discovery, Problem

_ADAPTERS = {
    "brats": "cmsbench.tasks.adapters.brats:BratsAdapter",
    "ixi": "cmsbench.tasks.adapters.ixi:IxiAdapter",
    "udpet": "cmsbench.tasks.adapters.udpet:UdpetAdapter",
    "ldct": "cmsbench.tasks.adapters.ldct:LdctAdapter",
    "synthrad2023": "cmsbench.tasks.adapters.synthrad:SynthradAdapter",
    "pattern": "cmsbench.tasks.adapters.custom:PatternAdapter",
    "ixi_sr": "cmsbench.tasks.adapters.superres:IxiSuperResAdapter",
    "brats_gbca": "cmsbench.tasks.adapters.gbca:BratsGbcaAdapter",
    "brats_missing": "cmsbench.tasks.adapters.brats_missing:BratsMissingAdapter",
    "ct_kernel": "cmsbench.tasks.adapters.ct_kernel:CtKernelAdapter",
    "msd_thin": "cmsbench.tasks.adapters.thin:ThinSliceAdapter",
}


def get_adapter(name: str) -> DatasetAdapter:
    """Instantiate the adapter registered under ``name``."""
    import importlib

    if name not in _ADAPTERS:
        raise UnknownNameError(f"unknown dataset adapter {name!r}; known: {sorted(_ADAPTERS)}")
    module, cls = _ADAPTERS[name].split(":")
    return getattr(importlib.import_module(module), cls)()


__all__ = ["CaseRef", "DatasetAdapter", "Discovery", "Problem", "get_adapter"]
