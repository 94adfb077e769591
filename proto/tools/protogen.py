"""Generate the Python code of `proto/` and guard the contracts.

`generate` compiles every .proto under proto/callstream into libs/contracts/src (messages, gRPC stubs
and mypy stubs) and records the descriptor set in proto/descriptors.binpb, refusing a breaking change.
`check` fails when the committed generated code is stale or when the protos break the last committed
descriptors (a removed field that is not reserved, a renumbered field, a field whose type changed).
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "libs" / "contracts" / "src"
PACKAGE_DIR = OUT_DIR / "callstream"
DESCRIPTORS = PROTO_DIR / "descriptors.binpb"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def proto_files() -> list[Path]:
    return sorted((PROTO_DIR / "callstream").rglob("*.proto"))


def compile_to(out: Path, descriptor_out: Path) -> None:
    """Run protoc (grpc_tools) with the mypy-protobuf plugins found next to this interpreter."""
    out.mkdir(parents=True, exist_ok=True)
    bindir = Path(sys.executable).parent
    rel = [str(p.relative_to(PROTO_DIR)) for p in proto_files()]
    cmd = [
        sys.executable, "-m", "grpc_tools.protoc", f"-I{PROTO_DIR}",
        f"--python_out={out}", f"--grpc_python_out={out}",
        f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}", f"--mypy_out={out}",
        f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}", f"--mypy_grpc_out={out}",
        f"--descriptor_set_out={descriptor_out}", *rel,
    ]
    # mypy-protobuf narrates every file it writes; show protoc's output only when it fails.
    result = subprocess.run(cmd, cwd=PROTO_DIR, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"protoc failed:\n{result.stdout}{result.stderr}")
    # Packages need an __init__.py so mypy and importlib treat them as regular packages.
    for directory in [out / "callstream", *(out / "callstream").rglob("*")]:
        if directory.is_dir():
            (directory / "__init__.py").touch()


def generated_files(base: Path) -> dict[str, Path]:
    return {
        str(p.relative_to(base)): p
        for p in base.rglob("*")
        if p.is_file() and (p.name.endswith(GENERATED_SUFFIXES) or p.name == "__init__.py")
    }


def load_descriptors(data: bytes) -> descriptor_pb2.FileDescriptorSet:
    fds = descriptor_pb2.FileDescriptorSet()
    fds.ParseFromString(data)
    return fds


def _messages(fds: descriptor_pb2.FileDescriptorSet) -> dict[str, descriptor_pb2.DescriptorProto]:
    found: dict[str, descriptor_pb2.DescriptorProto] = {}

    def walk(prefix: str, msgs: list[descriptor_pb2.DescriptorProto]) -> None:
        for m in msgs:
            name = f"{prefix}.{m.name}"
            found[name] = m
            walk(name, list(m.nested_type))

    for f in fds.file:
        walk(f.package, list(f.message_type))
    return found


def breaking_changes(old: descriptor_pb2.FileDescriptorSet, new: descriptor_pb2.FileDescriptorSet) -> list[str]:
    """What in `new` breaks readers of `old`: schemas only grow, removed fields must be reserved."""
    problems: list[str] = []
    old_msgs, new_msgs = _messages(old), _messages(new)
    for name, old_msg in old_msgs.items():
        new_msg = new_msgs.get(name)
        if new_msg is None:
            problems.append(f"message {name} was removed")
            continue
        by_number = {f.number: f for f in new_msg.field}
        by_name = {f.name: f for f in new_msg.field}
        reserved_numbers = [(r.start, r.end) for r in new_msg.reserved_range]  # end exclusive
        for field in old_msg.field:
            now = by_number.get(field.number)
            if now is None:
                if field.name in by_name:
                    problems.append(
                        f"{name}.{field.name} was renumbered {field.number} -> {by_name[field.name].number}"
                    )
                elif not any(lo <= field.number < hi for lo, hi in reserved_numbers):
                    problems.append(f"{name}.{field.name} ({field.number}) was removed without `reserved`")
            elif (now.type, now.type_name, now.label) != (field.type, field.type_name, field.label):
                problems.append(f"{name}.{field.name} ({field.number}) changed type")
    return problems


def committed_descriptors() -> bytes | None:
    """The descriptor set of the last commit, or the file in the tree before the first commit."""
    rel = DESCRIPTORS.relative_to(ROOT).as_posix()
    shown = subprocess.run(["git", "show", f"HEAD:{rel}"], cwd=ROOT, capture_output=True, check=False)
    if shown.returncode == 0:
        return shown.stdout
    return DESCRIPTORS.read_bytes() if DESCRIPTORS.exists() else None


def generate(allow_breaking: bool) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_out, tmp_desc = Path(tmp) / "out", Path(tmp) / "descriptors.binpb"
        compile_to(tmp_out, tmp_desc)
        old = committed_descriptors()
        if old is not None and not allow_breaking:
            problems = breaking_changes(load_descriptors(old), load_descriptors(tmp_desc.read_bytes()))
            if problems:
                print("refusing a breaking change to the contracts:", *problems, sep="\n  ", file=sys.stderr)
                return 1
        if PACKAGE_DIR.exists():
            shutil.rmtree(PACKAGE_DIR)
        shutil.copytree(tmp_out / "callstream", PACKAGE_DIR)
        shutil.copyfile(tmp_desc, DESCRIPTORS)
    print(f"generated {len(generated_files(PACKAGE_DIR))} files into {PACKAGE_DIR.relative_to(ROOT)}")
    return 0


def check() -> int:
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_out, tmp_desc = Path(tmp) / "out", Path(tmp) / "descriptors.binpb"
        compile_to(tmp_out, tmp_desc)
        fresh, committed = generated_files(tmp_out), generated_files(OUT_DIR)
        for rel in sorted(fresh.keys() | committed.keys()):
            if rel not in committed:
                failures.append(f"missing generated file {rel}")
            elif rel not in fresh:
                failures.append(f"generated file {rel} has no .proto any more")
            elif not filecmp.cmp(fresh[rel], committed[rel], shallow=False):
                failures.append(f"stale generated file {rel}")
        old = committed_descriptors()
        if old is None:
            failures.append(f"{DESCRIPTORS.relative_to(ROOT)} is missing: run `make proto`")
        else:
            failures += breaking_changes(load_descriptors(old), load_descriptors(tmp_desc.read_bytes()))
    if failures:
        print("proto-check failed (run `make proto`):", *failures, sep="\n  ", file=sys.stderr)
        return 1
    print(f"proto-check: {len(proto_files())} proto files, generated code fresh, no breaking change")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate")
    gen.add_argument("--allow-breaking", action="store_true", help="accept a breaking change (new major)")
    sub.add_parser("check")
    args = parser.parse_args(argv)
    return generate(args.allow_breaking) if args.command == "generate" else check()


if __name__ == "__main__":
    raise SystemExit(main())
