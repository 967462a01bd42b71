"""Build hook of tributary-client: generates the protobuf and gRPC stubs of tributary.v1 from
the repository's proto/ directory with grpcio-tools, into the wheel as the `tributary.v1`
package (the proto package's own name, so the generated imports work unchanged), with .pyi
type stubs.

    pip install ./clients/python

An sdist carries a copy of the .proto files (proto/ next to this file), so it builds anywhere.
"""

import importlib.metadata
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.command.sdist import sdist

HERE = Path(__file__).resolve().parent


def proto_root() -> Path:
    """proto/ of an sdist, else the repository's."""
    for root in (HERE / "proto", HERE.parent.parent / "proto"):
        if (root / "tributary" / "v1").is_dir():
            return root
    raise SystemExit("tributary-client: cannot find proto/tributary/v1 (build from the repository)")


def protos(root: Path) -> list:
    # Not cloudevent_stream.proto: it imports io.cloudevents.v1, whose generated Python module
    # cannot be imported as `io.cloudevents` (`io` is a standard module). CloudEvents consumers
    # use their own SDK's CloudEvent class with a plain gRPC channel instead.
    return sorted(
        path
        for path in (root / "tributary" / "v1").glob("*.proto")
        if path.name != "cloudevent_stream.proto"
    )


def runtime_requirements() -> list:
    """The generated code needs grpcio and protobuf at least as new as the generator."""
    tools = importlib.metadata.version("grpcio-tools")
    protobuf = next(
        requirement
        for requirement in importlib.metadata.requires("grpcio-tools") or []
        if requirement.startswith("protobuf")
    )
    return [f"grpcio>={tools}", protobuf.replace(" ", ""), "opentelemetry-api>=1.20"]


def generate(out: Path) -> None:
    import grpc_tools
    from grpc_tools import protoc

    root = proto_root()
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{root}",
        f"-I{well_known}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--pyi_out={out}",
        *[str(path) for path in protos(root)],
    ]
    if protoc.main(args) != 0:
        raise SystemExit("tributary-client: protoc failed on proto/tributary/v1")
    for package in (out / "tributary", out / "tributary" / "v1"):
        (package / "__init__.py").touch()
    (out / "tributary" / "py.typed").touch()


class BuildPyWithStubs(build_py):
    """build_py, then the generated stubs next to the package."""

    def run(self):
        super().run()
        generate(Path(self.build_lib))


class SdistWithProtos(sdist):
    """sdist, with the .proto files the build needs."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        root = proto_root()
        for path in protos(root):
            target = Path(base_dir) / "proto" / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)


setup(
    install_requires=runtime_requirements(),
    cmdclass={"build_py": BuildPyWithStubs, "sdist": SdistWithProtos},
)
