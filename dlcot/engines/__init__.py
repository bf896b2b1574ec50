"""Text generation behind one interface (DESIGN.md §7): hf, vllm, openai, scripted, replay.

`make_engine(cfg.engine, model_path=...)` builds the configured backend; every stage that generates takes it
from there and calls `engine.generate(engine.chat(texts), ...)`.
"""
from __future__ import annotations

from omegaconf import DictConfig

from dlcot.config import to_dict
from dlcot.engines.base import Completion, Engine, sample_seed
from dlcot.errors import ConfigError

__all__ = ["Completion", "Engine", "make_engine", "sample_seed"]
NEEDS_MODEL = ("hf", "vllm")


def make_engine(cfg: DictConfig, *, model_path: str | None = None, tokenizer_name: str = "qwen2",
                seed: int = 0) -> Engine:
    """The engine `cfg.name` names. `model_path` is required by hf/vllm (and is the served model name for
    openai unless engine.served_model is set); `tokenizer_name` counts tokens for engines without a model."""
    name = cfg.name
    if name in NEEDS_MODEL and not model_path:
        raise ConfigError(f"engine={name} needs model=PATH (a local model directory or Hub name)")
    if name == "hf":
        from dlcot.engines.hf import HFEngine

        return HFEngine(model_path, batch_size=cfg.batch_size, dtype=cfg.dtype, device=cfg.device)
    if name == "vllm":
        from dlcot.engines.vllm import VLLMEngine

        return VLLMEngine(model_path, tensor_parallel_size=cfg.tensor_parallel_size, dtype=cfg.dtype,
                          gpu_memory_utilization=cfg.gpu_memory_utilization, max_model_len=cfg.max_model_len,
                          seed=seed)
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
