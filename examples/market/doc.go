// Package market shows the go generate workflow: the Go types of the example
// schemas are generated into this package by the line below and checked in.
// Run `go generate ./examples/market` after editing a schema; the tests in
// gen/go fail when the checked-in files are stale.
package market

//go:generate go run github.com/tachyon-io/tachyon/cmd/tachyon-gen generate --go-out . ../Message.tsch ../book.tsch
