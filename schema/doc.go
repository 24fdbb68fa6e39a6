// Package schema parses .tsch files and computes the canonical layout model.
package schema
