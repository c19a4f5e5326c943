#!/usr/bin/env bash
# Builds OpenCC 1.4.2 from its PyPI source distribution into .deps/opencc, once.
#
# Why: no distribution ships OpenCC 1.4, and Debian's 1.1.6 converts everyday words
# wrongly (发育 -> 髮育). opencc-rust links the result statically, so the cantocap
# binary needs no OpenCC on the machine it runs on. .cargo/config.toml points
# opencc-rust at .deps/opencc.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
prefix="$root/.deps/opencc"
version=1.4.2

if [ -f "$prefix/lib/libopencc.a" ] && [ -f "$prefix/lib/libmarisa.a" ] \
  && [ -f "$prefix/.version" ] && [ "$(cat "$prefix/.version")" = "$version" ]; then
  echo "OpenCC $version already built in $prefix"
  exit 0
fi

for tool in cmake c++ pip3; do
  command -v "$tool" >/dev/null || { echo "error: $tool is needed to build OpenCC (apt-get install cmake g++ python3-pip)" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "Fetching the OpenCC $version source distribution from PyPI"
pip3 download --quiet --no-binary :all: --no-deps -d "$work" "opencc==$version"
tar -xzf "$work/opencc-$version.tar.gz" -C "$work"

echo "Building OpenCC $version (about a minute)"
cmake -S "$work/opencc-$version" -B "$work/build" \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="$prefix" \
  -DCMAKE_INSTALL_LIBDIR=lib \
  -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
  -DBUILD_SHARED_LIBS=OFF \
  -DOPENCC_ENABLE_INSTALL=ON \
  -DENABLE_GTEST=OFF -DENABLE_BENCHMARK=OFF -DBUILD_DOCUMENTATION=OFF \
  -DBUILD_PYTHON=OFF -DBUILD_OPENCC_JIEBA_PLUGIN=OFF >"$work/cmake.log" 2>&1 \
  || { cat "$work/cmake.log" >&2; exit 1; }
cmake --build "$work/build" --parallel "$(nproc)" >"$work/build.log" 2>&1 \
  || { tail -50 "$work/build.log" >&2; exit 1; }
cmake --install "$work/build" >/dev/null
# OpenCC's own conversion test cases, used by cantocap's script-conversion tests.
mkdir -p "$prefix/share/opencc-tests"
cp "$work/opencc-$version/test/testcases/testcases.json" "$prefix/share/opencc-tests/"
echo "$version" >"$prefix/.version"
echo "OpenCC $version installed in $prefix"
