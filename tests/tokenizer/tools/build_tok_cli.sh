#!/bin/bash
# Builds build/bin/tok_cli from the tokenizer, core and io objects of an existing
# CMake build (run `cmake --build build` or build those objects first).
set -euo pipefail
root=$(cd "$(dirname "$0")/../../.." && pwd)
b=$root/build
objs=$(cd $b && ninja -t targets all | grep -oE "CMakeFiles/ballast_lib.dir/src/(tokenizer|core|io)/[^:]*\.o" | sort -u)
(cd $b && ninja -j${JOBS:-2} $objs >/dev/null)
mkdir -p $b/bin
g++ -std=c++20 -O2 -DPCRE2_CODE_UNIT_WIDTH=8 -I$root/src $root/tests/tokenizer/tools/tok_cli.cpp \
  $(for o in $objs; do echo $b/$o; done) -lpcre2-8 -lutf8proc -lsentencepiece -lpthread -o $b/bin/tok_cli
echo $b/bin/tok_cli
