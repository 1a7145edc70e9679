"""Embedded bus throughput: batched publishing against one-at-a-time, in one run.

    python benchmarks/bus.py [--messages 100000] [--batch 100] [--synchronous normal|full]

Values are 1 KB, about the size of an encoded mention. The baseline is
`publish` one message per transaction, measured in the same run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from pipelines.bus_sqlite import EmbeddedBus

VALUE = b"x" * 1000


def measure(messages: int, batch: int, synchronous: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        bus = EmbeddedBus(Path(tmp) / "bus.db", synchronous=synchronous)  # type: ignore[arg-type]
        singles = max(1, messages // 50)
        started = time.perf_counter()
        for _ in range(singles):
            bus.publish("documents", "acme", VALUE)
        single = singles / (time.perf_counter() - started)
        started = time.perf_counter()
        for _ in range(messages // batch):
            bus.publish_many("mentions", [("acme", VALUE)] * batch)
        many = (messages // batch) * batch / (time.perf_counter() - started)
        consumer = bus.consumer("mentions", "bench")
        started, got = time.perf_counter(), 0
        while got < (messages // batch) * batch:
            got += len(consumer.poll(max_records=500, timeout=0))
            consumer.commit()
        consumed = got / (time.perf_counter() - started)
        bus.close()
    return {"publish_single": single, "publish_batched": many, "poll_commit": consumed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--synchronous", choices=["normal", "full"], default="normal")
    args = parser.parse_args()
    figures = measure(args.messages, args.batch, args.synchronous)
    print(f"embedded bus, synchronous={args.synchronous}, 1 KB messages")
    print(f"  publish, one per transaction : {figures['publish_single']:>10,.0f} msg/s  (baseline)")
    print(
        f"  publish_many, batches of {args.batch:<4}: {figures['publish_batched']:>10,.0f} msg/s"
        f"  ({figures['publish_batched'] / figures['publish_single']:.1f}x the baseline)"
    )
    print(f"  poll(500) + commit           : {figures['poll_commit']:>10,.0f} msg/s")


if __name__ == "__main__":
    main()
