"""``bench/gpu.sh --small`` runs on CPU with what a bare GPU machine lacks made unimportable
(no audio I/O libraries, no Praat, no Ray, no gRPC): the script a GPU session runs keeps working."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ABSENT = ("soundfile", "soxr", "parselmouth", "ray", "grpc")


def test_gpu_bench_runs_with_torch_alone(tmp_path: Path) -> None:
    for name in ABSENT:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(
            f"raise ModuleNotFoundError('{name} is absent here', name='{name}')\n"
        )
    out = tmp_path / "gpu.json"
    done = subprocess.run(
        [str(REPO / "bench" / "gpu.sh"), "--small", "--device", "cpu", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    whats = [r["what"] for r in result["rows"]]
    assert whats[0].startswith("HuBERT pretraining step") and whats[1].startswith("DC-Spin step")
    assert any(w.startswith("torch cpu fp32, windows") for w in whats)
    assert any(w.startswith("onnxruntime CPUExecutionProvider") for w in whats)
    assert all(r["x_realtime"] > 0 for r in result["rows"])
    assert "| HuBERT pretraining step" in done.stdout
