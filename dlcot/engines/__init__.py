"""Text generation behind one interface (docs/architecture.md §7): hf, vllm, openai, scripted, replay.

`make_engine(cfg.engine, model_path=...)` builds the configured backend; every stage that generates takes it
from there and calls `engine.generate(engine.chat(texts), ...)`.
"""
from __future__ import annotations

from omegaconf import DictConfig

from dlcot.config import to_dict
from dlcot.engines.base import Completion, Engine, sample_seed
from dlcot.errors import ConfigError

__all__ = ["Completion", "Engine", "chunk_size", "make_engine", "sample_seed", "vllm_sizes"]
NEEDS_MODEL = ("hf", "vllm")


def make_engine(cfg: DictConfig, *, model_path: str | None = None, tokenizer_name: str = "qwen2",
                seed: int = 0, needs: DictConfig | None = None) -> Engine:
    """The engine `cfg.name` names. `model_path` is required by hf/vllm (and is the served model name for
    openai unless engine.served_model is set); `tokenizer_name` counts tokens for engines without a model.
    `needs` (the teacher config) gives the tensor_parallel_size / max_model_len its model needs under vLLM
    where the engine group leaves them unset."""
    name = cfg.name
    if name in NEEDS_MODEL and not model_path:
        raise ConfigError(f"engine={name} needs model=PATH (a local model directory or Hub name)")
    if name in NEEDS_MODEL:
        from dlcot.engines.packaged import resolve

        model_path = resolve(str(model_path))  # pypi:<package>/<file>.gguf → its converted directory
    if name == "hf":
        from dlcot.engines.hf import HFEngine

        return HFEngine(model_path, batch_size=cfg.batch_size, dtype=str(cfg.dtype), device=cfg.device,
                        prefix_cache_mib=cfg.get("prefix_cache_mib", 1024))
    if name == "vllm":
        from dlcot.engines.vllm import VLLMEngine

        tp, max_len = vllm_sizes(cfg, needs)
        return VLLMEngine(model_path, tensor_parallel_size=tp, dtype=str(cfg.dtype),
                          gpu_memory_utilization=cfg.gpu_memory_utilization, max_model_len=max_len, seed=seed)
    if name == "openai":
        from dlcot.engines.openai import OpenAIEngine

        served = cfg.served_model or model_path
        if not served:
            raise ConfigError("engine=openai needs engine.served_model=NAME or model=NAME")
        return OpenAIEngine(cfg.base_url, served, endpoint=cfg.endpoint, api_key_env=cfg.api_key_env,
                            concurrency=cfg.concurrency, max_retries=cfg.max_retries, timeout_s=cfg.timeout_s,
                            cache_dir=cfg.cache_dir, tokenizer_name=tokenizer_name)
    if name == "scripted":
        from dlcot.engines.scripted import ScriptedEngine

        return ScriptedEngine(to_dict(cfg.rules), tokenizer_name=tokenizer_name)
    if name == "replay":
        from dlcot.engines.replay import ReplayEngine

        return ReplayEngine(cfg.path, response_field=cfg.response_field, id_field=cfg.id_field, match=cfg.match,
                            problem_field=cfg.problem_field, tokenizer_name=tokenizer_name)
    raise ConfigError(f"engine={name!r} is not a known engine (hf, vllm, openai, scripted, replay)")


def vllm_sizes(cfg: DictConfig, needs: DictConfig | None) -> tuple[int, int | None]:
    """(tensor_parallel_size, max_model_len) for vLLM: the engine group's when set, else the model's needs."""
    tp = cfg.tensor_parallel_size or (needs.get("tensor_parallel_size") if needs is not None else None) or 1
    max_len = cfg.max_model_len or (needs.get("max_model_len") if needs is not None else None)
    return int(tp), max_len


def chunk_size(cfg: DictConfig) -> int:
    """Prompts a stage hands to one `generate` call (and writes after it): `engine.chunk_size`, else the batch."""
    return max(1, cfg.get("chunk_size") or cfg.batch_size)
