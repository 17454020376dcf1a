"""GPU and NIC specs from catalog/data/gpus.toml and nics.toml."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from dualpath_twin.catalog._data import CatalogError, Entry, canonical_names, lookup


@dataclass(frozen=True)
class GpuSpec:
    """One GPU model's datasheet numbers (dense tensor-core throughput; bandwidths per direction)."""

    name: str
    bf16_tflops: float
    fp8_tflops: float  # 0 = no FP8 support
    hbm_gb: float
    hbm_tbps: float
    pcie_gen: int  # 0 = host link is not PCIe (e.g. NVLink-C2C on GB200)
    pcie_gbps: float  # GPU<->host per direction, Gbit/s
    nvlink_gbps: float  # per GPU per direction, Gbit/s
    source: str = ""

    @property
    def has_fp8(self) -> bool:
        """Whether the tensor cores run FP8."""
        return self.fp8_tflops > 0

    @property
    def hbm_bytes(self) -> float:
        """HBM capacity in bytes."""
        return self.hbm_gb * 1e9

    @property
    def hbm_bytes_per_s(self) -> float:
        """HBM bandwidth in bytes per second."""
        return self.hbm_tbps * 1e12

    def peak_flops(self, fp8: bool) -> float:
        """Dense peak FLOP/s; FP8 when asked and supported, else BF16."""
        tflops = self.fp8_tflops if fp8 and self.has_fp8 else self.bf16_tflops
        return tflops * 1e12


@dataclass(frozen=True)
class NicSpec:
    """A network card preset: line rate per direction."""

    name: str
    gbps: float
    pcie_gen: int
    source: str = ""


_OPTIONAL = {"aliases", "source"}


def _build(cls: type, entry: Entry) -> Any:
    """Check an entry's keys and types against a dataclass and construct it."""
    spec_fields = {f.name: f for f in fields(cls) if f.name != "name"}
    data = entry.data
    unknown = sorted(set(data) - set(spec_fields) - _OPTIONAL)
    if unknown:
        raise CatalogError(
            f"{entry.origin}: unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(spec_fields))}",
            entry.origin,
        )
    kwargs: dict[str, Any] = {"name": entry.name}
    for fname, f in spec_fields.items():
        if fname not in data:
            if fname == "source":
                continue
            raise CatalogError(f"{entry.origin}: missing field {fname}; add `{fname} = ...`", entry.origin)
        v = data[fname]
        if f.type in ("float", float):
            if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
                raise CatalogError(f"{entry.origin}: {fname} = {v!r} must be a non-negative number", entry.origin)
            v = float(v)
        elif f.type in ("int", int):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise CatalogError(f"{entry.origin}: {fname} = {v!r} must be a non-negative integer", entry.origin)
        elif not isinstance(v, str):
            raise CatalogError(f"{entry.origin}: {fname} = {v!r} must be a string", entry.origin)
        kwargs[fname] = v
    return cls(**kwargs)


def get_gpu(name: str) -> GpuSpec:
    """The GPU named ``name`` (case-insensitive, aliases allowed); CatalogError with suggestions if unknown."""
    gpu: GpuSpec = _build(GpuSpec, lookup("gpus", name, "GPU"))
    if gpu.bf16_tflops <= 0 or gpu.hbm_gb <= 0 or gpu.hbm_tbps <= 0:
        raise CatalogError(f"GPU {gpu.name}: bf16_tflops, hbm_gb and hbm_tbps must be > 0", "name")
    return gpu


def list_gpus() -> list[str]:
    """Canonical GPU names in the catalog."""
    return canonical_names("gpus")


def get_nic(name: str) -> NicSpec:
    """The NIC preset named ``name`` (e.g. ``cx7-400``); CatalogError with suggestions if unknown."""
    return _build(NicSpec, lookup("nics", name, "NIC"))


def list_nics() -> list[str]:
    """Canonical NIC preset names in the catalog."""
    return canonical_names("nics")
