"""int8 graphs for CPUs with integer dot-product instructions (AVX512-VNNI, AVX-VNNI, AMX).

Static quantization (ONNX Runtime, QDQ format): MatMul and Conv weights int8 per channel,
activations uint8 with ranges calibrated (percentile) on windows of real audio. Two places stay
float32 because units move most there: the first convolution (raw waveform in) and the
quantizer head (every MatMul after the encoder's last LayerNormalization: projections,
codebook or centroid scores). The units are not those of the float32 graph: an int8 export is
its own model (``precision: int8`` is in the fingerprinted config), and ``speechtok export
--precision int8`` measures its unit agreement with float32 and its speed side by side.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tokenizer.errors import InvalidInputError

if TYPE_CHECKING:  # onnx (the train extra) only to make int8 graphs; serving needs none of it
    import onnx

log = logging.getLogger(__name__)

INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
"""CPU flags (``/proc/cpuinfo``) under which ONNX Runtime's int8 kernels beat float32."""


def int8_instructions() -> list[str]:
    """The int8 dot-product instructions this CPU has (empty: int8 graphs are likely slower
    than float32 here)."""
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return []
    return [f for f in INT8_FLAGS if f in flags]


def kept_float(model: onnx.ModelProto) -> list[str]:
    """Nodes left in float32: the first Conv and the MatMuls after the last LayerNorm."""
    nodes = list(model.graph.node)
    convs = [n.name for n in nodes if n.op_type == "Conv"]
    norms = [i for i, n in enumerate(nodes) if n.op_type == "LayerNormalization"]
    after = norms[-1] if norms else len(nodes)
    head = [n.name for n in nodes[after:] if n.op_type in ("MatMul", "Gemm")]
    return convs[:1] + head


CALIBRATION_BATCH = 8
"""Windows per calibration batch; an int8 export needs at least one full batch."""


def check_calibration(windows: list[np.ndarray]) -> None:
    """Refuse too little calibration audio (before any graph is made)."""
    if len(windows) < CALIBRATION_BATCH:
        raise InvalidInputError(
            f"expected at least {CALIBRATION_BATCH} full windows of calibration audio for int8, "
            f"found {len(windows)} (give more or longer utterances)"
        )


def quantize_int8(graph: bytes, windows: list[np.ndarray]) -> bytes:
    """``graph`` (float32 ONNX, inputs ``waveforms`` and ``lengths``) with int8 MatMul and
    Conv, calibrated on ``windows`` (equal-length float audio)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    check_calibration(windows)
    batch = CALIBRATION_BATCH
    feeds: list[dict[str, np.ndarray]] = [
        {
            "waveforms": np.stack(windows[i : i + batch]).astype(np.float32),
            "lengths": np.full(batch, len(windows[i]), np.int64),
        }
        for i in range(0, len(windows) - batch + 1, batch)  # equal batches: percentile needs it
    ]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.feeds = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.feeds, None)

    with tempfile.TemporaryDirectory(prefix="speechtok-int8-") as tmp:
        src, pre, out = (Path(tmp) / n for n in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        src.write_bytes(graph)
        quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        with contextlib.redirect_stdout(sys.stderr):  # its progress lines are not our output
            quantize_static(
                str(pre),
                str(out),
                Reader(),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=["MatMul", "Conv"],
                per_channel=True,
                calibrate_method=CalibrationMethod.Percentile,
                nodes_to_exclude=kept_float(onnx.load(str(pre))),
            )
        return out.read_bytes()
