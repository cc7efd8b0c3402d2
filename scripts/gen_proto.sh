#!/usr/bin/env bash
# Regenerate serving/pb/ from proto/ (grpcio-tools pinned in pyproject: reproducible output).
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-.venv/bin/python}
out=${1:-.}
$py -m grpc_tools.protoc -Iserving/pb=proto/speechtok/v1 --python_out="$out" --pyi_out="$out" \
  --grpc_python_out="$out" proto/speechtok/v1/tokenizer.proto
