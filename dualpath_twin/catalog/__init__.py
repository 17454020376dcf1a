"""Hardware and model catalog: data in catalog/data/*.toml, derivations (KV bytes, FLOPs, weights) in Python.

See docs/catalog.md for the fields and how to add a GPU, NIC or model.
"""

from dualpath_twin.catalog._data import ENV_EXTRA_FILES, CatalogError, clear_cache, normalize_name
from dualpath_twin.catalog.hardware import GpuSpec, NicSpec, get_gpu, get_nic, list_gpus, list_nics
from dualpath_twin.catalog.models import (
    ARCHITECTURE_FIELDS,
    ModelSpec,
    get_model,
    list_kv_formats,
    list_models,
)

__all__ = [
    "ARCHITECTURE_FIELDS",
    "ENV_EXTRA_FILES",
    "CatalogError",
    "GpuSpec",
    "ModelSpec",
    "NicSpec",
    "clear_cache",
    "get_gpu",
    "get_model",
    "get_nic",
    "list_gpus",
    "list_kv_formats",
    "list_models",
    "list_nics",
    "normalize_name",
]
