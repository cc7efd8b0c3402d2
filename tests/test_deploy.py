"""Deploy manifests: the Ray Serve config validates against Ray's schema, its app builder
resolves, and the KubeRay manifests embed the same config."""

from __future__ import annotations

from pathlib import Path

import yaml
from ray.serve.schema import ServeDeploySchema

from serving.config import ServeConfig

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


def test_serve_config_validates_and_names_real_fields() -> None:
    config = yaml.safe_load((DEPLOY / "serve_config.yaml").read_text())
    schema = ServeDeploySchema.model_validate(config)
    app = schema.applications[0]
    assert app.import_path == "serving.app:app_from_args"
    ServeConfig(**app.args)  # every arg is a ServeConfig field of the right kind
    module, attr = app.import_path.split(":")
    import importlib

    assert callable(getattr(importlib.import_module(module), attr))


def test_rayservice_manifests_embed_the_serve_config() -> None:
    base = yaml.safe_load((DEPLOY / "serve_config.yaml").read_text())
    for name, gpus in (("rayservice.yaml", 0.0), ("rayservice-gpu.yaml", 1.0)):
        docs = list(yaml.safe_load_all((DEPLOY / name).read_text()))
        service = next(d for d in docs if d["kind"] == "RayService")
        embedded = yaml.safe_load(service["spec"]["serveConfigV2"])
        ServeDeploySchema.model_validate(embedded)
        assert embedded["applications"][0]["args"].pop("model_gpus") == gpus
        expected = yaml.safe_load(yaml.safe_dump(base))
        expected["applications"][0]["args"].pop("model_gpus")
        assert embedded == expected
        workers = service["spec"]["rayClusterConfig"]["workerGroupSpecs"][0]
        limits = workers["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert ("nvidia.com/gpu" in limits) == bool(gpus)


def test_checked_in_proto_stubs_are_current(tmp_path: Path) -> None:
    """Regenerating the stubs from proto/ (pinned grpcio-tools) gives the checked-in files."""
    import subprocess
    import sys

    root = DEPLOY.parent
    subprocess.run(
        [str(root / "scripts" / "gen_proto.sh"), str(tmp_path)],
        check=True,
        cwd=root,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
    )
    for name in ("tokenizer_pb2.py", "tokenizer_pb2.pyi", "tokenizer_pb2_grpc.py"):
        fresh = (tmp_path / "serving" / "pb" / name).read_text()
        assert fresh == (root / "serving" / "pb" / name).read_text(), name
