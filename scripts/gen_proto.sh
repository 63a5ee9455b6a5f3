#!/usr/bin/env bash
# Regenerate proxy/_wire_pb2.py and its type stub proxy/_wire_pb2.pyi from proxy/wire.proto.
#
# Needs grpcio-tools (pip install grpcio-tools). Only the message module is
# generated; the gRPC service glue is written by hand in proxy/_service.py so it
# does not pin a grpcio version. The generated runtime-version check is removed:
# the module only uses the descriptor builder API, present in every protobuf
# release silofed supports (>= 4.21), so it imports with whatever version pip
# resolves (see reps/0001-wire-protocol.md).
set -euo pipefail
cd "$(dirname "$0")/.."
python -m grpc_tools.protoc -Iproxy --python_out=proxy --pyi_out=proxy proxy/wire.proto
python - <<'PY'
import re, pathlib
src = pathlib.Path("proxy/wire_pb2.py").read_text()
src = re.sub(r"from google\.protobuf import runtime_version as _runtime_version\n", "", src)
src = re.sub(r"_runtime_version\.ValidateProtobufRuntimeVersion\([^)]*\)\n", "", src)
assert "_runtime_version" not in src, "runtime version check not removed"
pathlib.Path("proxy/_wire_pb2.py").write_text(src)
pathlib.Path("proxy/wire_pb2.py").unlink()
pathlib.Path("proxy/wire_pb2.pyi").rename("proxy/_wire_pb2.pyi")
PY
echo "wrote proxy/_wire_pb2.py and proxy/_wire_pb2.pyi"
