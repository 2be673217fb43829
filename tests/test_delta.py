"""The quantised encoder delta that ships a full fine-tune: exact packing, bounded error, real MiniLM round trip."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from monitor.classify.delta import apply_delta, dequantize, quantize, save_delta
from monitor.classify.model import DEFAULT_BASE_MODEL, load_encoder


@pytest.mark.parametrize("bits", [4, 8])
def test_quantisation_error_is_at_most_half_a_step_per_group(bits: int) -> None:
    gen = torch.Generator().manual_seed(0)
    delta = torch.randn(48, 96, generator=gen) * torch.rand(48, 1, generator=gen) * 1e-3
    codes, scale = quantize(delta, bits, group=32)
    assert codes.dtype == torch.uint8 and codes.shape == (48, 96 if bits == 8 else 48)
    assert scale.shape == (48, 3)
    back = dequantize(codes, scale, bits, group=32)
    step = scale.float().repeat_interleave(32, dim=1)
    assert torch.all((back - delta).abs() <= step / 2 + 1e-9)
    # The largest value of each group is represented (almost) exactly: nothing is clipped.
    assert torch.allclose(back.abs().amax(dim=1), delta.abs().amax(dim=1), rtol=1e-2)


def test_four_bit_codes_pack_two_per_byte_without_mixing_neighbours() -> None:
    delta = torch.tensor([[7.0, -7.0, 0.0, 3.0] * 8])
    codes, scale = quantize(delta, 4, group=32)
    assert codes.shape == (1, 16)
    assert torch.equal(dequantize(codes, scale, 4, group=32), delta)


def test_matrix_that_does_not_split_into_groups_is_refused() -> None:
    with pytest.raises(ValueError, match="groups of 32"):
        quantize(torch.zeros(4, 30), 4, group=32)


def test_saved_delta_rebuilds_a_fine_tuned_minilm(tmp_path: Path) -> None:
    base = load_encoder(DEFAULT_BASE_MODEL).eval()
    tuned = load_encoder(DEFAULT_BASE_MODEL).eval()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # a fine-tune-sized change to every transformer weight, none to the embeddings
        for name, param in tuned.named_parameters():
            if not name.startswith("embeddings."):
                param.add_(torch.randn(param.shape, generator=gen) * param.abs().mean() * 0.02)
    path = tmp_path / "delta.safetensors"
    entries = save_delta(tuned, base, path, bits=4)
    assert entries == sum(1 for n, _ in tuned.named_parameters() if not n.startswith("embeddings."))
    assert path.stat().st_size < 7_500_000  # 4 bits per weight: ~7 MB for MiniLM-L6's 10.6M layer weights

    rebuilt = load_encoder(DEFAULT_BASE_MODEL).eval()
    apply_delta(rebuilt, path)
    ids = torch.tensor([[101, 7592, 2088, 2003, 1037, 3231, 102]])
    mask = torch.ones_like(ids)
    with torch.inference_mode():
        want = tuned(input_ids=ids, attention_mask=mask).last_hidden_state
        got = rebuilt(input_ids=ids, attention_mask=mask).last_hidden_state
        untouched = base(input_ids=ids, attention_mask=mask).last_hidden_state
    assert (got - want).abs().max() < 0.1 * (untouched - want).abs().max()
    assert torch.equal(rebuilt.embeddings.word_embeddings.weight, base.embeddings.word_embeddings.weight)


def test_delta_for_another_base_model_is_refused(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "delta.safetensors"
    save_file({"decoder.block.0.weight.d": torch.zeros(4)}, str(path), metadata={"bits": "4", "group": "32"})
    with pytest.raises(ValueError, match="wrong base model"):
        apply_delta(load_encoder(DEFAULT_BASE_MODEL), path)
