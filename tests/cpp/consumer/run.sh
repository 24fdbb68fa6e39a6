#!/bin/sh
# Configures, builds and runs the CMake consumer project in BUILD_DIR
# (default: build/cpp-consumer), as `make test-cpp` does.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-"$here/../../../build/cpp-consumer"}
cmake -S "$here" -B "$build" ${CMAKE_ARGS:-}
cmake --build "$build"
"$build/consumer"
