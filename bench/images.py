"""Benchmark: netbind's images: sizes, and build times (a forced rebuild of each sidecar image
from the cached bases, and the up-to-date check that every `make test` pays). Run as root:

    .venv/bin/python bench/images.py [--rebuild]
"""
from __future__ import annotations

import argparse
import os
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rebuild", action="store_true", help="also time a forced rebuild of each image")
    opts = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root (podman)")
    from netbind import _podman, images

    built = {b.name: b for b in images.ensure(all_=True, say=lambda text: print(text, file=sys.stderr))}
    t0 = time.perf_counter()
    images.ensure(all_=True)
    check = time.perf_counter() - t0
    for tag in (images.BASE_TAG, images.BUILD_TAG):
        print(f"{tag:45} {(_podman.image_size(tag) or 0) / 1e6:6.1f} MB")
    for name, b in built.items():
        line = f"{b.tag:45} {b.size / 1e6:6.1f} MB"
        if opts.rebuild:
            again = images.ensure([name], force=True)[0]
            line += f"   forced rebuild {again.seconds:5.1f} s"
        print(line)
    print(f"up-to-date check of all images: {check:.2f} s")


if __name__ == "__main__":
    main()
