package main

import (
	"time"
	_ "unsafe" // go:linkname
)

// nanotime is the runtime's CLOCK_MONOTONIC reading (one vDSO call). The
// round trips are timed with it rather than time.Now, which reads the wall
// clock too — a second vDSO call that C++'s steady_clock, Rust's Instant
// and Java's nanoTime do not make, and that cost the Go figures ~20 ns a
// reading here.
//
//go:linkname nanotime runtime.nanotime
func nanotime() int64

// since is the time elapsed from a nanotime reading.
func since(t0 int64) time.Duration { return time.Duration(nanotime() - t0) }
