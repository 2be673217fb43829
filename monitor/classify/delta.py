"""A fully fine-tuned encoder stored as a small, quantised difference from its base model.

Full fine-tuning beats a LoRA adapter on small encoders, but a full MiniLM checkpoint is ~90 MB. What
fine-tuning changes is small next to the weights themselves, so the difference ``fine_tuned - base`` is
quantised per group of ``group`` input columns to 4 or 8 bits, with one fp32 scale per group (fp16 would
underflow: fine-tuning deltas are ~1e-4). A 4-bit delta of MiniLM-L6 is ~7 MB, and the quantisation error
is a fraction of the (already small) delta, so the rebuilt weights stay close to the trained ones. Biases
and LayerNorm parameters are stored as they are (fp32).

File layout (safetensors): ``<param>.q`` (packed integers) + ``<param>.scale`` for matrices, ``<param>.d``
for the rest; the metadata records ``bits`` and ``group``. Parameters with no entry are the base model's.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

DELTA_FILE = "encoder_delta.safetensors"
SUPPORTED_BITS = (4, 8)


def quantize(delta: torch.Tensor, bits: int, group: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-group quantisation of a 2-D tensor; returns (packed uint8 codes, fp32 scales)."""
    rows, cols = delta.shape
    if cols % group:
        raise ValueError(f"matrix with {cols} columns does not split into groups of {group}")
    levels = 2 ** (bits - 1) - 1  # 7 for 4 bits, 127 for 8 bits: symmetric around zero
    g = delta.float().reshape(rows, cols // group, group)
    scale = (g.abs().amax(dim=-1, keepdim=True) / levels).clamp_min(1e-12)
    codes = torch.round(g / scale).clamp(-levels, levels).to(torch.int16) + levels
    codes = codes.reshape(rows, cols).to(torch.uint8)
    if bits == 4:
        codes = codes[:, 0::2] | (codes[:, 1::2] << 4)  # two 4-bit codes per byte
    return codes.contiguous(), scale.squeeze(-1).contiguous()


def dequantize(codes: torch.Tensor, scale: torch.Tensor, bits: int, group: int) -> torch.Tensor:
    """Inverse of `quantize` (up to rounding): the fp32 delta matrix."""
    levels = 2 ** (bits - 1) - 1
    if bits == 4:
        codes = torch.stack([codes & 0x0F, codes >> 4], dim=-1).reshape(codes.shape[0], -1)
    values = codes.to(torch.int16) - levels
    rows, cols = values.shape
    g = values.float().reshape(rows, cols // group, group) * scale.float().unsqueeze(-1)
    return g.reshape(rows, cols)


def save_delta(encoder: nn.Module, base: nn.Module, path: Path, bits: int = 4, group: int = 32) -> int:
    """Write ``encoder - base`` for every changed parameter to `path`; returns the number of entries."""
    if bits not in SUPPORTED_BITS:
        raise ValueError(f"delta bits must be one of {SUPPORTED_BITS}, got {bits}")
    base_state = base.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for name, value in encoder.state_dict().items():
        ref = base_state.get(name)
        if ref is None or ref.shape != value.shape or not value.is_floating_point():
            continue
        delta = value.detach().float().cpu() - ref.float().cpu()
        if not bool(delta.any()):
            continue  # untouched (frozen embeddings): the base model's weights are used as they are
        if delta.dim() == 2 and delta.shape[1] % group == 0:
            tensors[f"{name}.q"], tensors[f"{name}.scale"] = quantize(delta, bits, group)
        else:
            tensors[f"{name}.d"] = delta.contiguous()
    save_file(tensors, str(path), metadata={"bits": str(bits), "group": str(group)})
    return len({k.rsplit(".", 1)[0] for k in tensors})


def apply_delta(encoder: nn.Module, path: Path) -> None:
    """Add the stored delta to `encoder`'s weights in place."""
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
        bits, group = int(meta.get("bits", 4)), int(meta.get("group", 32))
        keys = set(f.keys())
        state = encoder.state_dict()
        for key in sorted(keys):
            name, kind = key.rsplit(".", 1)
            if kind == "scale":
                continue
            if name not in state:
                raise ValueError(f"{path}: parameter {name!r} is not in the base encoder; wrong base model?")
            if kind == "q":
                delta = dequantize(f.get_tensor(key), f.get_tensor(f"{name}.scale"), bits, group)
            else:
                delta = f.get_tensor(key).float()
            with torch.no_grad():
                state[name].add_(delta.to(state[name].dtype).reshape(state[name].shape))
