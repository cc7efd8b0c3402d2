"""Ray started on this machine for the service (``speechtok serve``) and its benchmark."""

from __future__ import annotations

import os


def start_local_ray(num_cpus: int | None) -> None:
    """``ray.init`` for a one-machine service. Ray runs its workers (the service's replicas) at
    nice 15 unless told otherwise, below every client and other process here; a service
    started by hand is this machine's main job, so its workers run at nice 0."""
    import ray

    os.environ.setdefault("RAY_worker_niceness", "0")
    ray.init(
        num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, configure_logging=False
    )
