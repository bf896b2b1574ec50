"""Prefill over a cached prompt prefix on CPU: attention split at the cache boundary, exact, without the causal mask.

A prompt whose first blocks come from the prefix cache (hf.py) runs only its rest, and every rest token must see
all of the cached part plus the rest up to itself. SDPA's causal flag aligns the triangle top-left, which is only
right when nothing is cached, so transformers passes a full boolean mask instead; on CPU that takes the masked
kernel, which costs ~3x the causal one (a batch of 8 rests of 1,200 tokens after 300 cached: 225 ms against
78 ms a layer). The same attention is computed here in two kernel calls: the rest against the cached part (every
query sees every key; only the left padding of rows with a shorter cached part is masked, one row of the mask
broadcast over the queries) and the rest against itself (causal, top-left is right), merged by their log-sum-exp
weights. That is softmax over the union, so the output is the masked kernel's up to float rounding.

Used only where it pays and is known right: CPU, `sdpa` models, and only in the engine's cached-prefix prefill
(`split_past=True`); every other call goes to transformers' own SDPA function unchanged. On a GPU the masked
prefill takes the memory-efficient kernel and this path is not installed.

The mask of a decoding step of a left-padded batch (one new token per row, seeing every cached slot but the
padding) is the 2-D padding mask itself; transformers builds it through its general mask-function machinery at
every step, ~0.6 ms on CPU, a sixth of a batch-8 step of a small model. `decode_mask` returns that view and
leaves every other case to transformers' `sdpa_mask`.
"""
from __future__ import annotations

import torch
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
from transformers.masking_utils import causal_mask_function, sdpa_mask

NAME = "dlcot_cpu_sdpa"


def install(model) -> bool:
    """Switch a CPU `sdpa` model to this attention (registered once with transformers' public interfaces);
    False, and nothing changed, for any other model or device."""
    from transformers import AttentionInterface, AttentionMaskInterface

    config = model.config
    if model.device.type != "cpu" or getattr(config, "_attn_implementation", None) != "sdpa":
        return False
    AttentionInterface.register(NAME, split_sdpa)
    AttentionMaskInterface.register(NAME, decode_mask)
    model.set_attn_implementation(NAME)
    return True


def split_sdpa(module, query, key, value, attention_mask, split_past: bool = False, **kwargs):
    """transformers' SDPA attention, except for a cached-prefix prefill (`split_past`): see the module docstring."""
    past = key.shape[2] - query.shape[2]
    if (not split_past or past <= 0 or query.shape[2] == 1 or attention_mask is None
            or attention_mask.dtype != torch.bool):
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    n_rep = query.shape[1] // key.shape[1]
    key, value = repeat_kv(key, n_rep), repeat_kv(value, n_rep)
    visible = attention_mask[:, :, :1, :past]  # which cached slots each row sees (left padding masked)
    bias = torch.zeros(visible.shape, dtype=query.dtype, device=query.device).masked_fill(~visible, float("-inf"))
    scale = kwargs.get("scaling")
    out_past, lse_past = flash(query, key[:, :, :past], value[:, :, :past], attn_mask=bias, scale=scale)[:2]
    out_rest, lse_rest = flash(query, key[:, :, past:], value[:, :, past:], is_causal=True, scale=scale)[:2]
    lse = torch.logaddexp(lse_past, lse_rest)
    out = (out_past * torch.exp(lse_past - lse).unsqueeze(-1).to(out_past.dtype)
           + out_rest * torch.exp(lse_rest - lse).unsqueeze(-1).to(out_rest.dtype))
    return out.transpose(1, 2).contiguous(), None


def decode_mask(batch_size: int, q_length: int, kv_length: int, q_offset=0, kv_offset: int = 0,
                mask_function=causal_mask_function, attention_mask: torch.Tensor | None = None,
                local_size: int | None = None, allow_is_causal_skip: bool = True, use_vmap: bool = False, **kwargs):
    """transformers' `sdpa_mask`, except for a causal decoding step over a padded 2-D mask (module docstring): the
    query sits after every key, so the causal part allows all of them and the mask is the padding alone."""
    if (q_length == 1 and mask_function is causal_mask_function and attention_mask is not None
            and attention_mask.dim() == 2 and attention_mask.shape[-1] == kv_length and kv_offset == 0
            and local_size is None and not use_vmap and int(q_offset) >= kv_length - 1):
        padding = attention_mask.bool()
        if not (allow_is_causal_skip and bool(padding.all())):  # no padding: sdpa_mask returns None
            return padding[:, None, None, :]
    return sdpa_mask(batch_size=batch_size, q_length=q_length, kv_length=kv_length, q_offset=q_offset,
                     kv_offset=kv_offset, mask_function=mask_function, attention_mask=attention_mask,
                     local_size=local_size, allow_is_causal_skip=allow_is_causal_skip, use_vmap=use_vmap, **kwargs)
