"""Average the weights of several Chronos-2 checkpoints of one training run (a cheap ensemble).

    python3 scripts/average_checkpoints.py OUT CKPT [CKPT ...] [--config DIR]

Writes OUT/model.safetensors (the element-wise mean of every tensor) and OUT/config.json (from
``--config``, default the last checkpoint; Trainer checkpoints carry the training-time config, so pass
the folder whose config.json should ship, e.g. the run's final ``--out``).
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("checkpoints", type=Path, nargs="+")
    parser.add_argument("--config", type=Path, default=None, help="folder whose config.json is copied")
    args = parser.parse_args(argv)
    states = [load_file(str(p / "model.safetensors")) for p in args.checkpoints]
    keys = states[0].keys()
    if any(s.keys() != keys for s in states):
        raise SystemExit("checkpoints have different tensors; average checkpoints of one run only")
    mean = {k: (sum(s[k].double() for s in states) / len(states)).to(states[0][k].dtype) for k in keys}
    args.out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in mean.items()}, str(args.out / "model.safetensors"))
    shutil.copy((args.config or args.checkpoints[-1]) / "config.json", args.out / "config.json")


if __name__ == "__main__":
    main()
