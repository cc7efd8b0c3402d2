"""``speechtok serve`` (the service on Ray Serve) and ``speechtok client`` (call it)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the CLI imports serving (grpc, Ray) only when a command needs it
    from serving.client import Client


def add_parsers(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser(
        "serve",
        help="run the gRPC service (Ray Serve) until Ctrl-C or SIGTERM (then it drains in-flight "
        "calls for drain_seconds and exits)",
    )
    s.add_argument(
        "--model",
        action="append",
        default=[],
        help="model directory or shipped name to serve (repeatable; default: the default model)",
    )
    s.add_argument("--host", help="interface to bind (default 127.0.0.1: loopback only)")
    s.add_argument("--port", type=int, help="port (default 50051)")
    s.add_argument("--config", type=Path, help="YAML with ServeConfig fields")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    s.add_argument("--num-cpus", type=int, help="CPUs Ray may use (default: all)")
    s.add_argument(
        "--allow-unauthenticated",
        action="store_true",
        help="serve beyond loopback with neither API keys nor TLS (refused without it)",
    )
    s.set_defaults(func=run_serve)

    c = sub.add_parser("client", help="call a running service")
    csub = c.add_subparsers(dest="client_command", required=True)
    t = csub.add_parser("tokenize", help="tokenize files through the service (JSON lines)")
    _connection(t)
    t.add_argument("--model", default="", help="served model name (default: the default)")
    t.add_argument("--format", choices=["jsonl"], default="jsonl")
    t.add_argument("--dedup", action="store_true")
    t.add_argument("--full-utterance", action="store_true")
    t.add_argument("--stream", action="store_true", help="stream each file (bidirectional)")
    t.add_argument("--chunk-ms", type=float, default=100.0, help="stream chunk size")
    t.add_argument("--timeout", type=float, default=120.0)
    t.add_argument("files", nargs="+", type=Path)
    t.set_defaults(func=run_client_tokenize)
    y = csub.add_parser("synthesize", help="Synthesize: units -> WAV through the service")
    _connection(y)
    y.add_argument("--model", default="", help="served vocoder name (default: the default)")
    y.add_argument("--units", required=True, type=Path, help="as for speechtok synthesize")
    y.add_argument("--speaker", default="", help="speaker name or index (default: 0)")
    y.add_argument("--out", required=True, type=Path)
    y.set_defaults(func=run_client_synthesize)
    i = csub.add_parser("info", help="GetModelInfo as JSON (or every model with --all)")
    _connection(i)
    i.add_argument("--model", default="")
    i.add_argument("--all", action="store_true")
    i.set_defaults(func=run_client_info)


def run_serve(args: argparse.Namespace) -> int:
    import ray
    from ray import serve

    from serving.app import build_app
    from serving.config import ServeConfig, check_exposure
    from serving.local_ray import start_local_ray
    from tokenizer.train.runconfig import load_run_config

    config = load_run_config(ServeConfig(), args.config, args.set)
    flags: dict[str, Any] = {
        k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None
    }
    if args.model:
        flags["models"] = args.model
    if args.allow_unauthenticated:
        flags["allow_unauthenticated"] = True
    config = dataclasses.replace(config, **flags)
    check_exposure(config)
    app = build_app(config)
    start_local_ray(args.num_cpus)  # first: ray.init installs a SIGTERM handler of its own
    stop = threading.Event()

    def on_signal(*_: object) -> None:
        if stop.is_set():  # a second Ctrl-C: no more waiting
            raise KeyboardInterrupt
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    try:
        serve.start(proxy_location="Disabled")
        handle = serve.run(app, name="speechtok", route_prefix=None)
        address = handle.ready.remote().result()
        print(
            json.dumps(
                {
                    "serving": address,
                    "models": config.models or ["(default)"],
                    "auth": bool(config.api_keys),
                    "tls": bool(config.tls_cert),
                }
            ),
            flush=True,
        )
        print(f"speechtok: gRPC service on {address}; Ctrl-C stops it", file=sys.stderr, flush=True)
        while not stop.wait(1.0):  # wake now and then: signals reach Python between waits
            pass
        print("speechtok: stopping: draining calls in flight", file=sys.stderr, flush=True)
        handle.drain.remote(config.drain_seconds).result(timeout_s=config.drain_seconds + 5)
    finally:
        # Ray Serve's own shutdown waits up to 30 s on its controller; the service's Ray is
        # private to this process, and ending it ends every replica, so it goes at once.
        ray.shutdown()
    return 0


def _status_exit(e: Exception) -> int:
    import grpc

    if isinstance(e, grpc.RpcError):
        print(f"speechtok: error: {e.code().name}: {e.details()}", file=sys.stderr)
        return 1
    raise e


def _connection(p: argparse.ArgumentParser) -> None:
    """The flags every client command takes to reach the service."""
    p.add_argument("--addr", default="127.0.0.1:50051")
    p.add_argument("--api-key", help="API key (default: $SPEECHTOK_API_KEY)")
    p.add_argument("--tls", action="store_true")
    p.add_argument("--root-cert", help="PEM roots for --tls (default: system roots)")
    p.add_argument("--client-cert", help="PEM certificate of this client (mutual TLS)")
    p.add_argument("--client-key", help="PEM key of --client-cert")


def _client(args: argparse.Namespace) -> Client:
    from serving.client import Client

    return Client(args.addr, api_key=args.api_key, tls=args.tls, root_cert=args.root_cert,
                  client_cert=args.client_cert, client_key=args.client_key,
                  timeout=getattr(args, "timeout", 120.0))  # fmt: skip


def run_client_tokenize(args: argparse.Namespace) -> int:
    with _client(args) as client:
        for path in args.files:
            try:
                if args.stream:
                    line = _streamed(client, path, args)
                else:
                    r = client.tokenize(path, args.model, args.dedup, args.full_utterance)
                    line = {"path": str(path)}
                    if args.dedup:
                        line["durations"] = list(r.durations)
                    line.update(
                        units=list(r.units),
                        frame_rate=r.frame_rate,
                        model=r.model,
                        fingerprint=r.fingerprint,
                    )
            except Exception as e:
                return _status_exit(e)
            print(json.dumps(line), flush=True)
    return 0


def _streamed(client: Client, path: Path, args: argparse.Namespace) -> dict[str, object]:
    from tokenizer.dedup import dedup

    units: list[int] = []
    meta = None
    for answer in client.stream_file(path, args.chunk_ms, args.model):
        if answer.offset != len(units):
            raise RuntimeError(f"expected units at offset {len(units)}, found {answer.offset}")
        units += answer.units
        meta = answer
    assert meta is not None
    line: dict[str, object] = {"path": str(path)}
    out = units
    if args.dedup:
        import numpy as np

        u, d = dedup(np.asarray(units, dtype=np.int32))
        out, line["durations"] = u.tolist(), d.tolist()
    info = client.model_info(args.model)
    line.update(
        units=out, frame_rate=info.frame_rate, model=meta.model, fingerprint=meta.fingerprint
    )
    return line


def run_client_synthesize(args: argparse.Namespace) -> int:
    import soundfile as sf

    from speechtok.vocoder import read_units

    units, durations = read_units(args.units)
    with _client(args) as client:
        try:
            audio, r = client.synthesize(units.tolist(), args.speaker, durations, model=args.model)
        except Exception as e:
            return _status_exit(e)
    sf.write(args.out, audio, r.audio.sample_rate, subtype="PCM_16")
    print(json.dumps({"out": str(args.out), "seconds": r.audio_seconds, "vocoder": r.model}))
    return 0


def run_client_info(args: argparse.Namespace) -> int:
    from google.protobuf.json_format import MessageToDict

    with _client(args) as client:
        try:
            if args.all:
                for m in client.list_models().models:
                    print(json.dumps(MessageToDict(m, preserving_proto_field_name=True)))
            else:
                print(
                    json.dumps(
                        MessageToDict(
                            client.model_info(args.model), preserving_proto_field_name=True
                        )
                    )
                )
        except Exception as e:
            return _status_exit(e)
    return 0
