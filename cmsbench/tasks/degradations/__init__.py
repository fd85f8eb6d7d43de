"""Degradation operators: named, versioned, deterministic ways to turn clean volumes (real data or
phantoms) into a task's degraded inputs.

Built-ins (registered under the ``cmsbench.operators`` entry-point group):

- ``kspace_truncation`` - in-plane k-space centre truncation by ``factor`` (MR low resolution);
- ``downsample`` - in-plane block averaging by ``factor`` (the image-domain comparison);
- ``contrast_dose`` - a low contrast ``dose`` from pre-contrast and full-dose images plus independent noise
  at the acquisition's level (version 2; version 1 stays reachable by ``operator_version``);
- ``decimate``, ``slab`` - thick slices from thin-slice CT along z: every factor-th slice, or slab averages
  (:mod:`.slices`).

Use::

    from cmsbench.tasks.degradations import degradation, from_options

    call = degradation("kspace_truncation", factor=4)
    lr = call.apply(t2, seed=0, case_id="IXI002")
    spec_options = call.options()         # into TaskSpec.adapter_options (so into the fingerprint)
    from_options(spec_options).describe() # {"name": ..., "version": "1", "params": {...}} for records

The API (:class:`Operator`, :class:`Parameter`, validators) is in :mod:`.api`, the operators in
:mod:`.builtin`, the registry in :mod:`.registry`.
"""

from __future__ import annotations

from cmsbench.tasks.degradations.api import (
    Operator,
    OperatorCall,
    OperatorError,
    Parameter,
    operator_rng,
)
from cmsbench.tasks.degradations.registry import (
    BUILTIN_OPERATORS,
    OPERATORS,
    degradation,
    from_options,
    get_operator,
)

__all__ = [
    "BUILTIN_OPERATORS", "OPERATORS", "Operator", "OperatorCall", "OperatorError", "Parameter", "degradation",
    "from_options", "get_operator", "operator_rng",
]
