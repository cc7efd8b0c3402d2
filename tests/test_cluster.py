"""Two Ray nodes on this machine (``ray.cluster_utils.Cluster``): the batch job and the service
place their actors on both, and give what one node gives, row for row."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ray.cluster_utils import Cluster

from serving.batch.job import BatchConfig, run_batch
from serving.batch.layout import read_table, read_units
from serving.batch.verify import verify
from serving.client import Client
from serving.config import ServeConfig
from tokenizer.audio import decode_audio
from tokenizer.corpus.manifest import load_corpus
from tokenizer.kinds import load_served

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def files(tiny_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of the corpus's first 8 files (links)."""
    root, utts = load_corpus(tiny_corpus)
    folder = tmp_path_factory.mktemp("inputs")
    for u in sorted(utts, key=lambda u: u.id)[:8]:
        (folder / f"{u.id}.flac").symlink_to(u.audio_path(root))
    return folder


@pytest.fixture(scope="module")
def single_node_rows(files: Path, exported: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The batch job's rows on one node (its own local Ray, in a subprocess)."""
    out = tmp_path_factory.mktemp("one-node") / "job"
    done = subprocess.run(
        [sys.executable, "-m", "speechtok", "batch", "--input", str(files), "--out", str(out),
         "--model", str(exported), "--no-progress"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return {k: v.tolist() for k, v in read_units(out).items()}


@pytest.fixture(scope="module")
def cluster(single_node_rows: dict) -> Iterator[Cluster]:
    import ray

    nodes = Cluster(
        initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False}
    )
    nodes.add_node(num_cpus=2)
    ray.init(address=nodes.address, log_to_driver=False)
    try:
        yield nodes
    finally:
        ray.shutdown()
        nodes.shutdown()


def _nodes_of(class_part: str, alive: bool = False) -> set[str]:
    """Node ids of the actors (alive or finished; or only alive) whose class name contains
    ``class_part``."""
    from ray._private import state  # the GCS actor table: no dashboard needed

    return {
        a["Address"]["NodeID"]
        for a in state.actors().values()
        if class_part in a["ActorClassName"] and (a["State"] == "ALIVE" or not alive)
    }


def test_batch_job_on_two_nodes_equals_one_node(
    cluster: Cluster, files: Path, exported: Path, single_node_rows: dict, tmp_path: Path
) -> None:
    # 1.5 CPUs per tokenizer actor and 2 per node: the two actors cannot share a node.
    config = BatchConfig(input=files, out=tmp_path / "job", model=str(exported),
                         address=cluster.address, workers=2, worker_cpus=1.5, threads=1,
                         batch_size=2, progress=False)  # fmt: skip
    summary = run_batch(config)
    assert (summary.rows, summary.errors) == (8, 0)
    rows = {k: v.tolist() for k, v in read_units(tmp_path / "job").items()}
    assert rows == single_node_rows
    assert len(_nodes_of("TokenizeWorker")) == 2


def test_service_replicas_on_two_nodes_answer_as_offline(
    cluster: Cluster, files: Path, exported: Path
) -> None:
    from ray import serve

    from serving.app import build_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    config = ServeConfig(models=[str(exported)], port=port, model_replicas=2, model_cpus=1.5,
                         threads=1, vocoders=[])  # fmt: skip
    serve.start(proxy_location="Disabled")
    try:
        handle = serve.run(build_app(config), name="two-nodes", route_prefix=None)
        address = handle.ready.remote().result()
        offline = load_served(exported)
        client = Client(address)
        for f in sorted(files.iterdir()):
            answer = client.tokenize(f)
            assert list(answer.units) == offline.tokenize(decode_audio(f)).tolist()
        client.close()
        assert len(_nodes_of("ServeReplica:two-nodes:model-")) == 2
    finally:
        serve.shutdown()


def test_batch_job_survives_a_node_killed_mid_job(
    cluster: Cluster, files: Path, exported: Path, single_node_rows: dict, tmp_path: Path
) -> None:
    """A third node joins; the job's two tokenizer actors run on two of the three; once the
    first shard is written, the node of one of them dies (its raylet and every worker on it,
    SIGKILL). Ray restarts the actor on a node with room and Ray Data retries its batches; the
    job (or, had it failed, its re-run) ends with the rows of one node: none lost or doubled."""
    cluster.add_node(num_cpus=2)
    inputs = tmp_path / "inputs"  # 24 inputs: each file three times, so the job runs a while
    inputs.mkdir()
    for copy in range(3):
        for f in sorted(files.iterdir()):
            (inputs / f"{copy}-{f.name}").symlink_to(f.resolve())
    config = BatchConfig(input=inputs, out=tmp_path / "job", model=str(exported),
                         address=cluster.address, workers=2, worker_cpus=1.5, threads=1,
                         batch_size=1, shard_size=2, progress=False)  # fmt: skip
    outcome: dict[str, object] = {}

    def job() -> None:
        try:
            outcome["summary"] = run_batch(config)
        except Exception as e:  # a failed job is re-run below
            outcome["error"] = e

    runner = threading.Thread(target=job)
    runner.start()
    try:
        shards = tmp_path / "job" / "shards"
        deadline = time.monotonic() + 300
        while runner.is_alive() and time.monotonic() < deadline:
            if shards.is_dir() and list(shards.glob("*.parquet")):
                break
            time.sleep(0.02)
        written = len(list(shards.glob("*.parquet")))
        workers = {n.node_id: n for n in cluster.worker_nodes}
        victims = [workers[n] for n in _nodes_of("TokenizeWorker", alive=True) if n in workers]
        assert victims and written < 12, f"the job ran too fast: {written}/12 shards written"
        cluster.remove_node(victims[0], allow_graceful=False)
    finally:
        runner.join(timeout=600)
    assert not runner.is_alive(), "the job hung after the node died"
    print(f"node killed after {written}/12 shards; the job", "failed:" if "error" in outcome
          else "finished", outcome.get("error", ""))  # fmt: skip
    if "error" in outcome:
        run_batch(config)
    table = read_table(tmp_path / "job").to_pylist()
    assert len(table) == 24 and len({row["id"] for row in table}) == 24
    for row in table:
        assert row["units"] == single_node_rows[row["id"].split("-", 1)[1]], row["id"]
    assert verify(tmp_path / "job")["ok"]
