package ring

// Layout is implemented by every message type that tachyon-gen emits for Go.
// The methods have value receivers and return constants, so a ring can ask
// the zero value of a type parameter for its wire identity:
//
//	var zero T
//	fp := zero.TachyonFingerprint()
//
// Creating or attaching a ring compares these values with the ring header and
// refuses a mismatch before a single slot is read.
type Layout interface {
	// TachyonFingerprint is the 64-bit layout fingerprint of the message.
	TachyonFingerprint() uint64
	// TachyonTypeID is the message's @id.
	TachyonTypeID() uint32
	// TachyonSize is the message size in bytes (a multiple of its alignment).
	TachyonSize() int
	// TachyonAlign is the message alignment in bytes (a power of two).
	TachyonAlign() int
}
