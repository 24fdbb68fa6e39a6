// Package genpy renders the schema layout model as a Python module.
package genpy

import (
	"errors"

	"github.com/tachyon-io/tachyon/schema"
)

// FileName is the output file name for f: <stem>_tsch.py.
func FileName(f *schema.File) string { return f.Stem() + "_tsch.py" }

// Generate renders the Python module for f.
func Generate(f *schema.File) ([]byte, error) {
	return nil, errors.New("the Python backend is not implemented yet")
}
