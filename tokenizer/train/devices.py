"""Where a training run computes: a device, its precision, and (under ``torchrun``) this
process's place among the data-parallel processes.

Every trainer draws the *global* batch of a step from ``(seed, step)`` alone, then each process
takes its contiguous share of the rows, cut into ``accum`` micro-batches. Losses are sums over
the process's frames divided by the global batch's count (times the number of processes, since
DDP averages gradients), so one optimizer step sees the same gradient whatever the number of
processes and micro-batches: a global batch is independent of the devices it runs on, and a run
checkpointed with 2 processes resumes with 1.

On CUDA: bf16 autocast (the weights and the optimizer stay float32) and TF32 matmuls.
``torch.distributed`` is initialised from torchrun's environment (``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK``): gloo on CPU, NCCL on CUDA.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import Tensor, nn

from tokenizer.errors import InvalidInputError

T = TypeVar("T")


@dataclass(frozen=True)
class Devices:
    device: torch.device
    rank: int = 0
    """This process's index among ``world`` data-parallel processes."""
    world: int = 1

    @property
    def main(self) -> bool:
        """The process that writes checkpoints, logs and the model directory."""
        return self.rank == 0

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        """bf16 autocast on CUDA; float32 on CPU."""
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def rows(self, n: int, accum: int = 1) -> list[range]:
        """This process's rows of a global batch of ``n``, as ``accum`` micro-batches (empty
        ones dropped)."""
        if n % self.world:
            raise InvalidInputError(
                f"expected a batch size divisible by the {self.world} processes, found {n}"
            )
        mine = range(self.rank * n // self.world, (self.rank + 1) * n // self.world)
        size = -(-len(mine) // accum)
        return [mine[i : i + size] for i in range(0, len(mine), size)]

    def all_sum(self, x: Tensor) -> Tensor:
        """``x`` summed over the processes (itself with one process), on ``x``'s device (the
        reduction runs on this process's device: NCCL takes CUDA tensors only)."""
        return self._reduce(x, torch.distributed.ReduceOp.SUM)

    def all_max(self, x: Tensor) -> Tensor:
        return self._reduce(x, torch.distributed.ReduceOp.MAX)

    def _reduce(self, x: Tensor, op: torch.distributed.ReduceOp.RedOpType) -> Tensor:
        if self.world == 1:
            return x
        y = x.to(self.device, copy=True)
        torch.distributed.all_reduce(y, op=op)
        return y.to(x.device)

    def wrap(self, model: nn.Module, opt: torch.optim.Optimizer) -> nn.Module:
        """The model (and the optimizer's state, as a resumed run loaded it) on the device;
        under DDP, wrapped so gradients are averaged."""
        model.to(self.device)
        for state in opt.state.values():
            for key, value in state.items():
                if isinstance(value, Tensor) and key != "step":
                    state[key] = value.to(self.device)
        if self.world == 1:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def no_sync(self, model: nn.Module, last: bool) -> contextlib.AbstractContextManager[object]:
        """Skip DDP's gradient all-reduce on all but the last micro-batch of a step."""
        if isinstance(model, nn.parallel.DistributedDataParallel) and not last:
            return model.no_sync()
        return contextlib.nullcontext()

    def first(self, fn: Callable[[], T]) -> T:
        """``fn()`` on the main process first (e.g. building a cache), then on the others."""
        if self.world > 1 and not self.main:
            torch.distributed.barrier()
        out = fn()
        if self.world > 1 and self.main:
            torch.distributed.barrier()
        return out


CPU = Devices(torch.device("cpu"))
"""One process on the CPU."""


def devices(spec: str = "cpu") -> Devices:
    """``cpu``, ``cuda`` or ``cuda:N``; under torchrun, ``cuda`` means this process's
    ``LOCAL_RANK`` device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if spec != "cpu" and not spec.startswith("cuda"):
        raise InvalidInputError(f"expected a device cpu, cuda or cuda:N, found {spec!r}")
    if spec.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InvalidInputError(f"expected a CUDA device for --device {spec}, found none")
        if world > 1 and spec != "cuda":
            raise InvalidInputError(
                f"expected --device cuda under torchrun (each process takes its LOCAL_RANK "
                f"device), found {spec}"
            )
        local = int(os.environ.get("LOCAL_RANK", "0")) if world > 1 else torch.cuda.current_device()
        spec = f"cuda:{local}" if spec == "cuda" else spec
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    device = torch.device(spec)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        # Long: the other processes wait at a barrier while the main one builds a cache.
        torch.distributed.init_process_group(
            backend, rank=rank, world_size=world, timeout=datetime.timedelta(hours=12)
        )
        atexit.register(torch.distributed.destroy_process_group)
    return Devices(device, rank, world)
