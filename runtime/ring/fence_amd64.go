package ring

// loadFence orders the plain loads of a message copy before the atomic
// stamp re-check. x86-64 is TSO (loads are not reordered with older loads)
// and Go does not move memory operations across atomics, so it is empty.
func loadFence() {}
