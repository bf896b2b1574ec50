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
"""
from __future__ import annotations

import torch
from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward

NAME = "dlcot_cpu_sdpa"


def install(model) -> bool:
    """Switch a CPU `sdpa` model to this attention (registered once with transformers' public interfaces);
    False, and nothing changed, for any other model or device."""
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    config = model.config
    if model.device.type != "cpu" or getattr(config, "_attn_implementation", None) != "sdpa":
        return False
    AttentionInterface.register(NAME, split_sdpa)
    AttentionMaskInterface.register(NAME, sdpa_mask)
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
