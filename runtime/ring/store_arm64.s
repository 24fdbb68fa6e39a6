//go:build !race

#include "textflag.h"

// func storeOpenStamp(addr *uint64, v uint64)
//
// A release store of the odd stamp (STLR orders every earlier access before
// it), then DMB ISHST so that the message stores that follow cannot become
// visible before it: a seqlock reader that sees new message bytes then also
// sees the odd stamp on its re-check (ABI.md §7, "arm64").
TEXT ·storeOpenStamp(SB), NOSPLIT, $0-16
	MOVD addr+0(FP), R0
	MOVD v+8(FP), R1
	STLR R1, (R0)
	DMB  $0xa
	RET
