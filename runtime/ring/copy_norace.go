//go:build !race

package ring

// raceEnabled reports a -race build. Under the race detector, message bytes
// are copied with 8-byte atomics so that the seqlock's intentional
// overlapping of a lapping write with a lossy read is not reported; the
// index protocol is then checked by the detector over a heap buffer.
const raceEnabled = false
