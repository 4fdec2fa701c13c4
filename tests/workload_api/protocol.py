"""The Workload API's messages, compiled from SPIFFE's published ``workload.proto``.

Why compile at test time into a *private* descriptor pool instead of committing
generated ``_pb2`` modules: the ``spiffe`` package (the client under test) registers
its own generated copy of the same file, with the same unqualified message names
(the proto has no ``package``), in protobuf's default pool. A second generated copy
in the same process clashes there; a private pool does not. Compiling from the
committed ``.proto`` also keeps the server independent of the client's own stubs (a
mistake in those would not be mirrored by the server) and of the protobuf version
the stubs were generated for. ``grpcio-tools`` (the ``test`` extra) runs ``protoc``
in-process; the descriptor set is built once per process.
"""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PROTO = Path(__file__).with_name("workload.proto")
SERVICE = "SpiffeWorkloadAPI"
"""The gRPC service name (the proto has no package, so paths are ``/SpiffeWorkloadAPI/...``)."""


@dataclass(frozen=True)
class Messages:
    """The message classes the test server reads and writes."""

    X509SVIDRequest: Any
    X509SVIDResponse: Any
    X509BundlesRequest: Any
    X509BundlesResponse: Any
    JWTSVIDRequest: Any
    JWTSVIDResponse: Any
    JWTBundlesRequest: Any
    JWTBundlesResponse: Any
    ValidateJWTSVIDRequest: Any
    ValidateJWTSVIDResponse: Any


@functools.cache
def messages() -> Messages:
    """Compile ``workload.proto`` (with its imports) and return its message classes."""
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"  # google/protobuf/struct.proto
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "workload.desc"
        code = protoc.main(["protoc", f"-I{PROTO.parent}", f"-I{include}",
                            "--include_imports", f"--descriptor_set_out={out}", PROTO.name])
        if code != 0:
            raise RuntimeError(f"protoc failed on {PROTO} (exit {code})")
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:  # dependencies first: protoc writes them in that order
        pool.Add(file)
    return Messages(**{name: message_factory.GetMessageClass(pool.FindMessageTypeByName(name))
                       for name in Messages.__dataclass_fields__})


__all__ = ["Messages", "PROTO", "SERVICE", "messages"]
