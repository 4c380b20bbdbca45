"""Regenerate the committed protobuf/gRPC modules from the .proto files beside this file.

Run ``python -m netbind.hooks.proto._generate`` after editing a .proto (needs grpcio-tools).
The include root is ``src/`` so that generated imports are absolute within the package
(``from netbind.hooks.proto import api_info_pb2``) instead of top-level module names.
"""
from __future__ import annotations

import sys
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent
PROTO_FILES = ("api_info.proto", "api_v1alpha1.proto", "api_v1alpha2.proto", "api_v1alpha3.proto",
               "api_plugins_v1alpha1.proto")
_PACKAGE_PATH = Path("netbind", "hooks", "proto")


def generate(out_dir: Path) -> list[Path]:
    """Write the generated modules for every .proto into ``out_dir/netbind/hooks/proto``."""
    from grpc_tools import protoc  # build/test-time dependency only

    include_root = PROTO_DIR.parents[2]  # .../src
    target = Path(out_dir)
    (target / _PACKAGE_PATH).mkdir(parents=True, exist_ok=True)
    well_known = Path(protoc.__file__).resolve().parent / "_proto"
    args = ["protoc", f"-I{include_root}", f"-I{well_known}",
            f"--python_out={target}", f"--grpc_python_out={target}"]
    args += [str(_PACKAGE_PATH / name) for name in PROTO_FILES]
    rc = protoc.main(args)
    if rc != 0:
        raise RuntimeError(f"protoc failed with exit code {rc}")
    return sorted((target / _PACKAGE_PATH).glob("*_pb2*.py"))


def main() -> None:
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for path in generate(Path(tmp)):
            shutil.copyfile(path, PROTO_DIR / path.name)
            print(f"wrote {PROTO_DIR / path.name}")


if __name__ == "__main__":
    sys.exit(main())
