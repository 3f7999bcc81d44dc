"""spark-submit entry point of the smoke path (same code as ``python -m pipelines smoke``)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pipelines import config, logs, smoke


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--env", default=None, help="parameters/<env>.yaml to use")
    parser.add_argument("--produce", type=int, default=0, help="first send N messages")
    parser.add_argument("--topic", default=None, help="topic (default: kafka.topics.smoke)")
    parser.add_argument("--collection", default=smoke.COLLECTION, help="target collection")
    parser.add_argument("--checkpoint", type=Path, default=None, help="checkpoint folder")
    args = parser.parse_args()
    logs.configure()
    settings = config.load(args.env)
    if args.produce:
        smoke.produce(settings, args.produce, topic=args.topic)
    result = smoke.run(settings, args.topic, args.collection, args.checkpoint)
    print(json.dumps(result.__dict__))


if __name__ == "__main__":
    main()
