"""The Ray Serve application: one ``TokenizerModel`` deployment per served model and the gRPC
ingress. ``build_app`` is what ``speechtok serve`` runs; ``app_from_args`` is the import path
for ``serve run`` / ``serve deploy`` configs (``deploy/serve_config.yaml``)."""

from __future__ import annotations

import re
from typing import Any

from ray.serve import Application

from serving.config import ServeConfig
from serving.ingress import GrpcIngress
from serving.model_deployment import TokenizerModel
from serving.vocoder_deployment import VocoderModel
from tokenizer.kinds import require
from tokenizer.model_dir import load_model_dir
from tokenizer.shipped import DEFAULT_VOCODER_FILE, default_name, models_root, resolve


def model_names(config: ServeConfig) -> dict[str, str]:
    """Served name -> model directory; fails early on a model that cannot be served."""
    specs = config.models or [default_name()]
    out: dict[str, str] = {}
    for spec in specs:
        path = resolve(spec)
        model = load_model_dir(path).config
        require(model, path, "tokenizer", exported=True)
        out[model.name] = str(path.resolve())
    return out


def vocoder_names(config: ServeConfig) -> dict[str, str]:
    """Served vocoder name -> directory (the first is the default)."""
    specs: list[str | None] = list(config.vocoders) if config.vocoders is not None else []
    if config.vocoders is None:
        specs = [None] if (models_root() / DEFAULT_VOCODER_FILE).is_file() else []
    out = {}
    for spec in specs:
        path = resolve(spec, DEFAULT_VOCODER_FILE)
        model = load_model_dir(path).config
        require(model, path, "vocoder")
        out[model.name] = str(path.resolve())
    return out


def _deployment_name(prefix: str, name: str) -> str:
    return f"{prefix}-{re.sub(r'[^A-Za-z0-9_-]', '-', name)}"


def build_app(config: ServeConfig) -> Application:
    names = model_names(config)
    default = next(iter(names))
    models = {
        name: TokenizerModel.options(  # type: ignore[attr-defined]
            name=_deployment_name("model", name),
            num_replicas=config.model_replicas,
            ray_actor_options={"num_cpus": config.model_cpus, "num_gpus": config.model_gpus},
        ).bind(path, config.threads, config.max_batch, config.batch_wait_ms, config.spinning)
        for name, path in names.items()
    }
    vocoders = {
        name: VocoderModel.options(  # type: ignore[attr-defined]
            name=_deployment_name("vocoder", name),
            ray_actor_options={"num_cpus": config.model_cpus / 2},
        ).bind(path, config.threads)
        for name, path in vocoder_names(config).items()
    }
    return GrpcIngress.bind(config, models, default, vocoders)  # type: ignore[attr-defined]


def app_from_args(args: dict[str, Any]) -> Application:
    """``serve run deploy/serve_config.yaml``: ``args`` are ServeConfig fields."""
    return build_app(ServeConfig(**args))
