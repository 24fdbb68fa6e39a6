// Package telemetry holds the messages of this application, generated from
// ../telemetry.tsch by tachyon-gen (a tool of this module: go.mod).
package telemetry

//go:generate go tool tachyon-gen generate --go-out . --go-package telemetry ../telemetry.tsch
