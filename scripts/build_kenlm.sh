#!/usr/bin/env bash
# Build KenLM's lmplz and build_binary from the kenlm sdist on PyPI (the same source as the
# Python module) against Debian's Boost, and install them into the virtualenv's bin/.
# Usage: scripts/build_kenlm.sh VENV_DIR
set -euo pipefail
venv=$(realpath "$1")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$venv/bin/pip" download -q --no-deps kenlm==0.3.0 -d "$work"
tar -xzf "$work"/kenlm-*.tar.gz -C "$work"
src=$(find "$work" -maxdepth 1 -type d -name 'kenlm-*' | head -1)
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF \
  -DCMAKE_POLICY_VERSION_MINIMUM=3.5 > "$work/cmake.log" 2>&1 || { cat "$work/cmake.log"; exit 1; }
cmake --build "$work/build" --target lmplz build_binary -j "$(nproc)" > "$work/build.log" 2>&1 \
  || { tail -50 "$work/build.log"; exit 1; }
install -m 755 "$work/build/bin/lmplz" "$work/build/bin/build_binary" "$venv/bin/"
echo "installed lmplz and build_binary into $venv/bin"
