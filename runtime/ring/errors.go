package ring

import "errors"

// Sentinel errors. Callers branch with errors.Is; the returned errors wrap
// these with the ring's name and the values involved.
var (
	// ErrTimeout reports that a Block publish or a receive with a deadline
	// waited longer than allowed.
	ErrTimeout = errors.New("ring: timeout")
	// ErrFull reports that a DropNewest ring had no free slot; the message
	// was not published and was counted as dropped.
	ErrFull = errors.New("ring: full")
	// ErrEmpty reports that a non-blocking receive found no message.
	ErrEmpty = errors.New("ring: empty")
	// ErrClosed reports that the publisher closed the ring and every
	// published message has been received.
	ErrClosed = errors.New("ring: publisher closed")
	// ErrPublisherDead reports that the publisher's process died without
	// closing the ring; every message it published has been received.
	ErrPublisherDead = errors.New("ring: publisher dead")
	// ErrEvicted reports that the producer evicted this subscriber (it
	// stalled past the liveness timeout, or its head was invalid).
	ErrEvicted = errors.New("ring: subscriber evicted")
	// ErrOverwritten reports that a borrowed slot was overwritten before it
	// was released: the data read from it must be discarded. It was counted
	// as dropped.
	ErrOverwritten = errors.New("ring: borrowed slot overwritten")
	// ErrMismatch reports that a ring's message identity (fingerprint, type
	// id, size or alignment) differs from the Go type's.
	ErrMismatch = errors.New("ring: message type mismatch")
	// ErrCorrupt reports a segment whose header or indices are invalid.
	ErrCorrupt = errors.New("ring: corrupt segment")
	// ErrVersion reports a segment written for another ABI version.
	ErrVersion = errors.New("ring: unsupported ABI version")
	// ErrNotReady reports a segment whose creator has not finished
	// initialising it within the allowed time.
	ErrNotReady = errors.New("ring: segment not ready")
	// ErrNoSpace reports that the shared-memory filesystem cannot hold the
	// segment (ENOSPC at creation).
	ErrNoSpace = errors.New("ring: no space for segment")
	// ErrExists reports that a segment of that name already exists.
	ErrExists = errors.New("ring: segment exists")
	// ErrNotFound reports that no segment of that name exists.
	ErrNotFound = errors.New("ring: segment not found")
	// ErrInUse reports that a segment still has a live publisher.
	ErrInUse = errors.New("ring: segment in use")
	// ErrNoEntry reports that the subscriber table is full.
	ErrNoEntry = errors.New("ring: subscriber table full")
	// ErrInvalidName reports a ring name that is not a safe segment name.
	ErrInvalidName = errors.New("ring: invalid name")
	// ErrInvalidOptions reports options that cannot describe a ring.
	ErrInvalidOptions = errors.New("ring: invalid options")
	// ErrInsecure reports a segment whose owner or mode is not trusted.
	ErrInsecure = errors.New("ring: insecure segment")
	// ErrUnsupported reports a platform without the needed primitives.
	ErrUnsupported = errors.New("ring: unsupported platform")
	// ErrClaimed reports a second Claim before Commit, or a Release without a
	// borrow.
	ErrClaimed = errors.New("ring: claim or borrow outstanding")
)
