"""Per-client quotas (serving/quota.py) on a clock the test moves, quotas and lists from
``--set``, and the message limit. tests/test_serving.py runs quotas on the real server."""

from __future__ import annotations

import pytest

from serving.config import ServeConfig, max_message_bytes, quotas
from serving.quota import Quota, Quotas
from tokenizer.errors import InvalidInputError
from tokenizer.train.runconfig import RunConfigError, load_run_config


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_bucket_admits_the_burst_then_the_rate_and_calls_within_the_hold() -> None:
    clock = Clock()
    q = Quotas(Quota(rps=4, burst=2), clock=clock)
    assert [q.take("a"), q.take("a")] == [(True, 0.0), (True, 0.0)]  # the burst
    assert q.take("a") == (False, pytest.approx(0.25))  # then one every 1/4 s
    assert q.take("b") == (True, 0.0)  # another client has its own bucket
    clock.now += 0.25
    assert q.take("a") == (True, 0.0) and not q.take("a")[0]
    # held calls wait their turn: each due 1/4 s after the one before
    assert [q.take("a", hold_s=1.0) for _ in range(4)] == [
        (True, pytest.approx(0.25)), (True, pytest.approx(0.5)),
        (True, pytest.approx(0.75)), (True, pytest.approx(1.0)),
    ]  # fmt: skip
    assert q.take("a", hold_s=1.0) == (False, pytest.approx(1.25))  # beyond the hold: refused
    clock.now += 60  # refills only up to the burst
    assert [q.take("a")[0] for _ in range(3)] == [True, True, False]


def test_no_rate_means_no_limit_and_streams_are_counted() -> None:
    q = Quotas(Quota(streams=2), {"vip": Quota(streams=3)})
    assert all(q.take("a") == (True, 0.0) for _ in range(1000))
    assert [q.open_stream("a") for _ in range(3)] == [True, True, False]
    q.close_stream("a")
    assert q.open_stream("a")
    assert [q.open_stream("vip") for _ in range(4)] == [True, True, True, False]
    assert "a" in q.open and q.open["vip"] == 3


def test_config_quotas_and_bad_ones() -> None:
    q = quotas(ServeConfig(client_rps=5, client_quotas={"k": {"rps": 1, "streams": 1}}))
    assert q.quota("other") == Quota(5.0, 0, 16) and q.quota("k") == Quota(1.0, 0, 1)
    sets = ["api_keys=[k, other]", 'client_quotas={"k": {"rps": 1, "streams": 2}}']
    config = load_run_config(ServeConfig(), None, sets)  # speechtok serve --set ...
    assert config.api_keys == ["k", "other"] and quotas(config).quota("k") == Quota(1.0, 0, 2)
    with pytest.raises(RunConfigError, match=r"api_keys\[0\]: expected str"):
        load_run_config(ServeConfig(), None, ["api_keys=[1]"])
    for bad in ({"rps": -1}, {"calls": 3}):
        with pytest.raises(InvalidInputError, match="expected a quota"):
            quotas(ServeConfig(client_quotas={"k": bad}))


def test_message_limit_follows_the_longest_request() -> None:
    assert max_message_bytes(ServeConfig()) == 64 << 20  # 600 s at 48 kHz x 8: the cap
    short = ServeConfig(max_request_seconds=5.0, max_sample_rate=16000, max_channels=1)
    assert max_message_bytes(short) == 5 * 16000 * 4 + (1 << 20)
