package main

import (
	"unsafe"

	"github.com/tachyon-io/tachyon/examples/market"
	"github.com/tachyon-io/tachyon/runtime/ring"
)

// seedFloor is how the C floors lay out the seed message's slots: as a ring
// created with default options does (ring.SlotAuto.Resolve), so that each
// floor bounds the geometry the Tachyon figures beside it really use.
var seedFloor = func() (f struct {
	layout         string   // "line" or "packed"
	pingpong, spsc []string // floor_pingpong's and floor_spsc's arguments
}) {
	var m market.Message
	if ring.SlotAuto.Resolve(uint64(unsafe.Sizeof(m)), uint64(unsafe.Alignof(m))) == ring.SlotLine {
		f.layout, f.pingpong, f.spsc = "line", []string{"--slots", "--line"}, []string{"--slot", "128"}
	} else {
		f.layout, f.pingpong, f.spsc = "packed", []string{"--slots"}, []string{"--slot", "72"}
	}
	return f
}()
