// Package consumer tests the ways users consume Tachyon from their own
// repository, each by building a project in a temporary directory outside
// this checkout exactly as README.md ("Install") tells them to:
//
//   - a Go module with its own go.mod, tachyon-gen as a tool (the replace
//     recipe), go generate, build and vet, then a publisher and a
//     subscriber process exchanging its own messages over a ring;
//   - a fresh Python venv with the client pip-installed from the checkout,
//     a consumer script type-checked with mypy --strict and run;
//   - a CMake project using an installed Tachyon through
//     find_package(tachyon CONFIG REQUIRED) and tachyon_generate(), with
//     g++ and clang++ and every conversion warning an error, and the same
//     project through FetchContent;
//   - the golden-layout CI step, through a compatible and a breaking change.
//
// The projects live in testdata/. Nothing here reaches the network: Go
// runs with GOPROXY=off on the module cache (make test runs go mod
// download first), pip installs from build/wheels (make wheels).
package consumer
