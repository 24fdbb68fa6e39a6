#!/usr/bin/env bash
# Builds the peers of `make bench-peers` (bench/peers/README.md) from the
# package registries: the Rust peers (iceoryx2, riyaneel's Tachyon) from
# crates.io with cargo, the Aeron peer from Maven Central with mvn. Only
# code of this repository is built; the systems come in as the published
# packages its lock files name. Outputs go to build/peers/.
#
# A peer that cannot be built here does not stop the others: its error goes
# to build/peers/NAME.error, which `bench peers` reports in place of its
# figures.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=build/peers
mkdir -p "$out"

# fail NAME LOG: keep the tail of a failed build as the reason NAME is not measured.
fail() {
  { echo "build failed ($2):"; grep -E 'error|Error|ERROR' "$2" | head -5; } >"$out/$1.error"
  echo "bench-peers: $1 did not build; see $2 (bench peers reports it as not measured)" >&2
}

# riyaneel's tachyon-sys compiles its C++23 core with the cc crate: g++ 12
# lacks what it needs, Debian's clang-19 has it (and bindgen needs libclang).
if ! command -v clang++-19 >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bench-peers: installing clang-19 (riyaneel's Tachyon needs a C++23 compiler)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang-19 libclang-19-dev >/dev/null
  else
    echo "bench-peers: riyaneel's Tachyon needs clang++-19: apt-get install clang-19 libclang-19-dev" >&2
  fi
fi

export CARGO_TARGET_DIR="$PWD/$out/cargo"
[ -d /usr/lib/llvm-19/lib ] && export LIBCLANG_PATH=/usr/lib/llvm-19/lib
for peer in iceoryx2 riyaneel; do
  rm -f "$out/$peer.error"
  if ! command -v cargo >/dev/null 2>&1; then
    echo "no cargo on PATH (install Rust)" >"$out/$peer.error"
    continue
  fi
  log="$out/$peer.build.log"
  cxx=()
  [ "$peer" = riyaneel ] && cxx=(env CXX=clang++-19)
  echo "bench-peers: building the $peer peer (cargo, --locked)"
  if ! "${cxx[@]}" nice cargo build --quiet --release --locked \
      --manifest-path bench/peers/rust/Cargo.toml -p "bench-$peer" >"$log" 2>&1; then
    rm -f "$CARGO_TARGET_DIR/release/bench-$peer"
    fail "$peer" "$log"
  fi
done

rm -f "$out/aeron.error"
if ! command -v mvn >/dev/null 2>&1 || ! command -v java >/dev/null 2>&1; then
  echo "no mvn or java on PATH (apt-get install maven)" >"$out/aeron.error"
else
  echo "bench-peers: building the Aeron peer (mvn)"
  if ! nice mvn -q -B -f bench/peers/aeron/pom.xml package >"$out/aeron.build.log" 2>&1; then
    rm -f "$out/aeron/classpath.txt"
    fail aeron "$out/aeron.build.log"
  fi
fi
exit 0
