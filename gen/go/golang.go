// Package gengo renders the schema layout model as Go source.
package gengo

import (
	"errors"

	"github.com/tachyon-io/tachyon/schema"
)

// FileName is the output file name for f: <stem>.tsch.go.
func FileName(f *schema.File) string { return f.Stem() + ".tsch.go" }

// Generate renders the Go source for f.
func Generate(f *schema.File) ([]byte, error) {
	return nil, errors.New("the Go backend is not implemented yet")
}
