package schematest

import _ "embed"

// CornersFile is the name of the corner-case schema, package corners: the
// shapes random draws rarely or never reach (extreme enum values, constants
// and type ids, one-byte-only and single-field messages, a message of
// exactly MaxMessageSize, names that meet what each generator adds). Every
// oracle compiles it beside its random schemas, and golden/corners locks
// each backend's output of it.
const CornersFile = "corners.tsch"

// Corners is the text of CornersFile.
//
//go:embed corners.tsch
var Corners string
