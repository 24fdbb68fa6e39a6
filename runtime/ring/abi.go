package ring

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// The constants below are the byte-level ABI of a ring segment, version 2.
// runtime/ABI.md is their prose form; the two must change together, and the
// golden vectors under golden/abi pin the bytes.
const (
	// Magic is the first 8 bytes of every ring segment: ASCII "TACHRING",
	// read as a little-endian uint64.
	Magic uint64 = 0x474E495248434154
	// ABIVersion is the version of the segment layout this package speaks.
	ABIVersion uint32 = 2

	// HeaderSize is the size of the fixed header (four 128-byte lines).
	HeaderSize = 512
	// LineSize is the granularity of every independently written region of
	// the segment (two 64-byte lines, against adjacent-line prefetch).
	LineSize = 128
	// CacheLine is the size of one cache line: the slot granularity of the
	// line slot layout.
	CacheLine = 64
	// EntrySize is the size of one subscriber table entry.
	EntrySize = 128

	// MaxMessageSize is the largest message a ring carries (DESIGN.md §2).
	MaxMessageSize = 1 << 20
	// MaxAlign is the largest message alignment a ring honours.
	MaxAlign = 4096
	// MaxCapacity is the largest slot count of a ring.
	MaxCapacity = 1 << 30
	// MaxSubscribers is the largest subscriber table.
	MaxSubscribers = 1024
	// MaxSegmentSize bounds a segment's total size (1 TiB).
	MaxSegmentSize = 1 << 40
)

// Identity line (0x000-0x07F): written by the creator before ready, then
// immutable.
const (
	offMagic       = 0x00 // u64
	offVersion     = 0x08 // u32
	offReady       = 0x0C // u32: 0 initialising, 1 ready (stored last)
	offFingerprint = 0x10 // u64
	offTypeID      = 0x18 // u32
	offMsgSize     = 0x1C // u32
	offMsgAlign    = 0x20 // u32
	offSlotSize    = 0x24 // u32
	offSlotMsgOff  = 0x28 // u32
	offPolicy      = 0x2C // u32
	offCapacity    = 0x30 // u64
	offMaxSubs     = 0x38 // u32
	offHeaderSize  = 0x3C // u32
	offSleepersOff = 0x40 // u64
	offTableOff    = 0x48 // u64
	offSlotsOff    = 0x50 // u64
	offSegSize     = 0x58 // u64
	offLivenessNs  = 0x60 // u64
	offCreatedNs   = 0x68 // u64 (volatile: wall clock at creation)
	offBatch       = 0x70 // u32 (producer batch K)
	offFlags       = 0x74 // u32: flagLineSlots | flagAsymFences
	offEvictOff    = 0x78 // u64 (derived: the producer's eviction table)
)

// Bits of the identity line's flags word.
const (
	// flagLineSlots: every slot starts on a cache line and spans whole
	// lines (the line slot layout); otherwise slots are packed.
	flagLineSlots = 1 << 0
	// flagAsymFences: the creator registered for
	// membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED); the hot sides of the
	// handshakes use no fence and the parking sides issue a membarrier
	// (ABI.md §8, "Fences").
	flagAsymFences = 1 << 1
	knownFlags     = flagLineSlots | flagAsymFences
)

// Producer hot line (0x080-0x0FF): written only by the producer.
const (
	offTail         = 0x80 // u64: published count
	offDroppedNewst = 0x88 // u64: DropNewest rejections
	offNotify       = 0x90 // u32: eventcount the subscribers' futex waits on
)

// Producer control line (0x100-0x17F): written only by the producer; the
// producer's liveness lock covers exactly this line.
const (
	offProdState     = 0x100 // u32: 0 none, 1 active, 2 closed
	offProdSleeping  = 0x104 // u32: 1 while the producer is parked
	offProdPID       = 0x108 // u32
	offProdWaitEntry = 0x10C // u32: entry the parked producer waits on
	offProdStartTime = 0x110 // u64: /proc/PID/stat starttime (clock ticks)
	offProdHeartbeat = 0x118 // u64: CLOCK_MONOTONIC ns
	offProdWaitHead  = 0x120 // u64: head that entry must reach to wake it
	offProdScanEpoch = 0x128 // u64: registry epoch its latest table scan saw
	offProdFences    = 0x130 // u32: 0 light, 1 strong (the producer's hot side)
	prodLockStart    = 0x100
	prodLockLen      = LineSize
)

// Registry line (0x180-0x1FF): written only while holding flock(LOCK_EX) on
// the segment.
const (
	offRegEpoch  = 0x180 // u64: incremented on every table change
	offTableHigh = 0x188 // u32: 1 + the highest entry index ever registered (monotonic)
)

// Subscriber entry fields, relative to the entry.
const (
	entHead      = 0x00 // u64, owner
	entReceived  = 0x08 // u64, owner
	entDropped   = 0x10 // u64, owner
	entHeartbeat = 0x18 // u64, owner: CLOCK_MONOTONIC ns
	entState     = 0x20 // u32, registry
	entPID       = 0x24 // u32, registry
	entGen       = 0x28 // u64, registry
	entMaxLag    = 0x30 // u64, registry (0 = unlimited)
	entStartTime = 0x38 // u64, registry
	entJoin      = 0x40 // u64, registry: head at registration
	entKey       = 0x48 // u64, registry: SubscriberKey of a named subscriber, 0 if anonymous
	entWake      = 0x50 // u32, owner: eventcount the parked producer's futex waits on
	entFlags     = 0x54 // u32, registry: entFlagStrong
)

// Bits of an entry's flags word.
const (
	// entFlagStrong: the owner could not register for membarrier, so on an
	// asymmetric ring the producer must switch to strong fences for it.
	entFlagStrong = 1 << 0
)

// Values of the ready word.
const (
	readyInit  = 0
	readyReady = 1
)

// Producer states (offProdState).
const (
	prodNone   = 0
	prodActive = 1
	prodClosed = 2
)

// Subscriber entry states (entState). An entry is evicted when the
// producer's eviction word for it equals its generation; the state does not
// change (the producer never writes the table).
const (
	entFree    = 0
	entJoining = 1 // registering: holds the producer back, not yet counted
	entActive  = 2
)

// Policy is the producer's behaviour when the ring is full. It is chosen at
// creation and stored in the header.
type Policy uint32

const (
	// Block makes the producer wait (bounded by Options.Timeout) until every
	// unlimited subscriber has made room.
	Block Policy = 0
	// DropNewest rejects the message being published when the ring is full
	// (Claim and Publish return ErrFull) and counts it.
	DropNewest Policy = 1
	// DropOldest never waits: the producer overwrites the oldest slot and
	// lapped subscribers detect it through the slot stamps.
	DropOldest Policy = 2
)

// String returns the policy's ABI.md spelling.
func (p Policy) String() string {
	switch p {
	case Block:
		return "block"
	case DropNewest:
		return "drop_newest"
	case DropOldest:
		return "drop_oldest"
	}
	return fmt.Sprintf("policy(%d)", uint32(p))
}

// SlotLayout is how slots are laid out in a segment (ABI.md §3). It is
// chosen at creation and recorded in the header.
type SlotLayout int

const (
	// SlotAuto picks SlotLine when a slot of the line layout is one or two
	// cache lines (a stamp and a message of at most 120 bytes), SlotPacked
	// otherwise: the measurements behind the rule are in docs/DECISIONS.md.
	SlotAuto SlotLayout = iota
	// SlotPacked packs slots at 8-byte (or the message's) alignment: least
	// memory, and a slot may straddle cache lines.
	SlotPacked
	// SlotLine starts every slot on a cache line and rounds it up to whole
	// lines, so a message moves in as few lines as it can.
	SlotLine
)

// String returns the layout's name.
func (l SlotLayout) String() string {
	switch l {
	case SlotAuto:
		return "auto"
	case SlotPacked:
		return "packed"
	case SlotLine:
		return "line"
	}
	return fmt.Sprintf("layout(%d)", int(l))
}

// Resolve returns the concrete layout l gives a message of the given size
// and alignment. SlotAuto's rule: line slots when the stamp and the message
// fit in two cache lines (a slot of one or two whole lines), packed slots
// for larger messages. Measured in docs/DECISIONS.md: an aligned slot of
// one or two lines travels between cores as the hardware moves lines (the
// adjacent-line prefetch fetches a 128-byte pair together), where a packed
// slot straddles lines it shares with its neighbours; above two lines the
// padding costs stream throughput and buys no round-trip time.
func (l SlotLayout) Resolve(msgSize, msgAlign uint64) SlotLayout {
	if l != SlotAuto {
		return l
	}
	if max(8, msgAlign)+msgSize <= 2*CacheLine {
		return SlotLine
	}
	return SlotPacked
}

// geometry is every offset and size of a segment, derived from four primary
// values and the slot layout. Readers recompute it and compare it with the
// stored copy.
type geometry struct {
	msgSize    uint64
	msgAlign   uint64
	lineSlots  bool
	slotMsgOff uint64
	slotSize   uint64
	capacity   uint64
	mask       uint64
	maxSubs    uint64
	sleepersOf uint64
	evictOff   uint64
	tableOff   uint64
	slotsOff   uint64
	segSize    uint64
}

func roundUp(x, a uint64) uint64 { return (x + a - 1) &^ (a - 1) }

func isPow2(x uint64) bool { return x != 0 && x&(x-1) == 0 }

// computeGeometry derives a segment's layout; it is the only place offsets
// are computed (ABI.md §3, "Derived layout").
func computeGeometry(msgSize, msgAlign, capacity, maxSubs uint64, lineSlots bool) (geometry, error) {
	switch {
	case msgSize == 0 || msgSize > MaxMessageSize:
		return geometry{}, fmt.Errorf("message size %d outside [1, %d]", msgSize, MaxMessageSize)
	case !isPow2(msgAlign) || msgAlign > MaxAlign:
		return geometry{}, fmt.Errorf("message alignment %d is not a power of two <= %d", msgAlign, MaxAlign)
	case msgSize%msgAlign != 0:
		return geometry{}, fmt.Errorf("message size %d is not a multiple of its alignment %d", msgSize, msgAlign)
	case !isPow2(capacity) || capacity < 2 || capacity > MaxCapacity:
		return geometry{}, fmt.Errorf("capacity %d is not a power of two in [2, %d]", capacity, MaxCapacity)
	case maxSubs == 0 || maxSubs > MaxSubscribers:
		return geometry{}, fmt.Errorf("subscriber table size %d outside [1, %d]", maxSubs, MaxSubscribers)
	}
	g := geometry{msgSize: msgSize, msgAlign: msgAlign, lineSlots: lineSlots, capacity: capacity, mask: capacity - 1, maxSubs: maxSubs}
	g.slotMsgOff = max(8, msgAlign)
	slotAlign := g.slotMsgOff
	if lineSlots {
		slotAlign = max(CacheLine, msgAlign)
	}
	g.slotSize = roundUp(g.slotMsgOff+msgSize, slotAlign)
	g.sleepersOf = HeaderSize
	g.evictOff = g.sleepersOf + roundUp(4*maxSubs, LineSize)
	g.tableOff = g.evictOff + roundUp(8*maxSubs, LineSize)
	g.slotsOff = roundUp(g.tableOff+EntrySize*maxSubs, max(LineSize, msgAlign))
	hi, slots := bits.Mul64(g.slotSize, capacity)
	if hi != 0 || slots > MaxSegmentSize || g.slotsOff+slots > MaxSegmentSize {
		return geometry{}, fmt.Errorf("segment of %d slots of %d bytes exceeds %d bytes", capacity, g.slotSize, uint64(MaxSegmentSize))
	}
	g.segSize = g.slotsOff + slots
	return g, nil
}

// header is the decoded identity line.
type header struct {
	fingerprint uint64
	typeID      uint32
	policy      Policy
	batch       uint32
	asymFences  bool
	livenessNs  uint64
	createdNs   uint64
	geo         geometry
}

// flags returns the identity line's flags word.
func (h *header) flags() uint32 {
	var f uint32
	if h.geo.lineSlots {
		f |= flagLineSlots
	}
	if h.asymFences {
		f |= flagAsymFences
	}
	return f
}

// encodeIdentity writes the identity line (all of it but the ready word) into
// b, which is at least HeaderSize long.
func encodeIdentity(b []byte, h *header) {
	le := binary.LittleEndian
	g := &h.geo
	le.PutUint64(b[offMagic:], Magic)
	le.PutUint32(b[offVersion:], ABIVersion)
	le.PutUint64(b[offFingerprint:], h.fingerprint)
	le.PutUint32(b[offTypeID:], h.typeID)
	le.PutUint32(b[offMsgSize:], uint32(g.msgSize))
	le.PutUint32(b[offMsgAlign:], uint32(g.msgAlign))
	le.PutUint32(b[offSlotSize:], uint32(g.slotSize))
	le.PutUint32(b[offSlotMsgOff:], uint32(g.slotMsgOff))
	le.PutUint32(b[offPolicy:], uint32(h.policy))
	le.PutUint64(b[offCapacity:], g.capacity)
	le.PutUint32(b[offMaxSubs:], uint32(g.maxSubs))
	le.PutUint32(b[offHeaderSize:], HeaderSize)
	le.PutUint64(b[offSleepersOff:], g.sleepersOf)
	le.PutUint64(b[offTableOff:], g.tableOff)
	le.PutUint64(b[offSlotsOff:], g.slotsOff)
	le.PutUint64(b[offSegSize:], g.segSize)
	le.PutUint64(b[offLivenessNs:], h.livenessNs)
	le.PutUint64(b[offCreatedNs:], h.createdNs)
	le.PutUint32(b[offBatch:], h.batch)
	le.PutUint32(b[offFlags:], h.flags())
	le.PutUint64(b[offEvictOff:], g.evictOff)
}

// decodeHeader validates the identity line in b (a private copy of the
// segment's first HeaderSize bytes, so every field is read exactly once) and
// returns it. It never trusts a stored offset: each is recomputed from the
// primary fields and compared.
func decodeHeader(b []byte) (header, error) {
	if len(b) < HeaderSize {
		return header{}, fmt.Errorf("%w: header is %d bytes, want %d", ErrCorrupt, len(b), HeaderSize)
	}
	le := binary.LittleEndian
	if m := le.Uint64(b[offMagic:]); m != Magic {
		return header{}, fmt.Errorf("%w: magic %#016x, want %#016x", ErrCorrupt, m, Magic)
	}
	if v := le.Uint32(b[offVersion:]); v != ABIVersion {
		return header{}, fmt.Errorf("%w: the segment is ABI version %d, this client speaks version %d", ErrVersion, v, ABIVersion)
	}
	if r := le.Uint32(b[offReady:]); r != readyReady {
		if r == readyInit {
			return header{}, ErrNotReady
		}
		return header{}, fmt.Errorf("%w: ready word %d, want %d", ErrCorrupt, r, readyReady)
	}
	flags := le.Uint32(b[offFlags:])
	if flags&^knownFlags != 0 {
		return header{}, fmt.Errorf("%w: flags %#x, want only bits of %#x", ErrCorrupt, flags, knownFlags)
	}
	h := header{
		fingerprint: le.Uint64(b[offFingerprint:]),
		typeID:      le.Uint32(b[offTypeID:]),
		policy:      Policy(le.Uint32(b[offPolicy:])),
		batch:       le.Uint32(b[offBatch:]),
		asymFences:  flags&flagAsymFences != 0,
		livenessNs:  le.Uint64(b[offLivenessNs:]),
		createdNs:   le.Uint64(b[offCreatedNs:]),
	}
	if h.policy > DropOldest {
		return header{}, fmt.Errorf("%w: policy %d, want 0, 1 or 2", ErrCorrupt, uint32(h.policy))
	}
	g, err := computeGeometry(uint64(le.Uint32(b[offMsgSize:])), uint64(le.Uint32(b[offMsgAlign:])),
		le.Uint64(b[offCapacity:]), uint64(le.Uint32(b[offMaxSubs:])), flags&flagLineSlots != 0)
	if err != nil {
		return header{}, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	if h.batch == 0 || uint64(h.batch) > g.capacity/2 {
		return header{}, fmt.Errorf("%w: batch %d outside [1, %d]", ErrCorrupt, h.batch, g.capacity/2)
	}
	if h.livenessNs == 0 {
		return header{}, fmt.Errorf("%w: liveness timeout is 0", ErrCorrupt)
	}
	checks := []struct {
		name      string
		got, want uint64
	}{
		{"slot size", uint64(le.Uint32(b[offSlotSize:])), g.slotSize},
		{"slot message offset", uint64(le.Uint32(b[offSlotMsgOff:])), g.slotMsgOff},
		{"header size", uint64(le.Uint32(b[offHeaderSize:])), HeaderSize},
		{"sleepers offset", le.Uint64(b[offSleepersOff:]), g.sleepersOf},
		{"eviction table offset", le.Uint64(b[offEvictOff:]), g.evictOff},
		{"table offset", le.Uint64(b[offTableOff:]), g.tableOff},
		{"slots offset", le.Uint64(b[offSlotsOff:]), g.slotsOff},
		{"segment size", le.Uint64(b[offSegSize:]), g.segSize},
	}
	for _, c := range checks {
		if c.got != c.want {
			return header{}, fmt.Errorf("%w: %s %d, want %d", ErrCorrupt, c.name, c.got, c.want)
		}
	}
	h.geo = g
	return h, nil
}
