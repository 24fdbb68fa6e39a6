// Package gencpp renders the schema layout model as a C++ header.
package gencpp

import (
	"errors"

	"github.com/tachyon-io/tachyon/schema"
)

// FileName is the output file name for f: <stem>.tsch.hpp.
func FileName(f *schema.File) string { return f.Stem() + ".tsch.hpp" }

// Generate renders the C++ header for f.
func Generate(f *schema.File) ([]byte, error) {
	return nil, errors.New("the C++ backend is not implemented yet")
}
