// Package bridge moves a ring's messages to NATS JetStream (Out) and from
// JetStream into a ring (In), as unchanged bytes with their identity. The
// command tachyon-bridge is its front end; docs/BRIDGE.md is its contract.
package bridge

import (
	"fmt"
	"strconv"
	"unsafe"

	"github.com/nats-io/nats.go"

	"github.com/tachyon-io/tachyon/runtime/ring"
)

// The headers of every NATS message the bridge publishes (docs/BRIDGE.md,
// "Wire format"). Values are decimal unless said otherwise.
const (
	HdrMsgID       = "Nats-Msg-Id"         // RING:EPOCH:SEQ+COUNT, or RING:EPOCH:closed
	HdrFingerprint = "Tachyon-Fingerprint" // 0x-prefixed, 16 hex digits
	HdrTypeID      = "Tachyon-Type-Id"
	HdrSize        = "Tachyon-Size"
	HdrAlign       = "Tachyon-Align"
	HdrMessage     = "Tachyon-Message" // package.Message, when the bridge knows it
	HdrRing        = "Tachyon-Ring"    // the source ring's name
	HdrEpoch       = "Tachyon-Epoch"   // the source ring's creation time, ns since 1970
	HdrSeq         = "Tachyon-Seq"     // ring sequence of the first message carried
	HdrCount       = "Tachyon-Count"   // messages carried (K when packed)
	HdrWindow      = "Tachyon-Window"  // ring sequence that opened the out window
	HdrControl     = "Tachyon-Control" // "closed": the source ring ended at Tachyon-Seq
)

// frame is one decoded NATS message of the bridge: count consecutive ring
// messages of one source ring incarnation (epoch), starting at first.
type frame struct {
	ring   string
	epoch  uint64
	first  uint64
	count  uint64
	window uint64
	id     ring.Identity
	name   string
	data   []byte // count * id.Size bytes: the messages, back to back
	closed bool   // a control frame: the source ring ended at first
	tag    uint64 // the in side's number of the JetStream message
}

// end returns the ring sequence just past the frame.
func (f *frame) end() uint64 { return f.first + f.count }

func headerUint(h nats.Header, key string, base int) (uint64, error) {
	v := h.Get(key)
	if v == "" {
		return 0, fmt.Errorf("no %s header", key)
	}
	if base == 16 {
		if len(v) < 3 || v[:2] != "0x" {
			return 0, fmt.Errorf("%s %q is not 0x-prefixed hex", key, v)
		}
		v = v[2:]
	}
	n, err := strconv.ParseUint(v, base, 64)
	if err != nil {
		return 0, fmt.Errorf("%s %q is not a number", key, h.Get(key))
	}
	return n, nil
}

// decodeFrame reads a bridge message's headers and checks its data length;
// an error says why the message is not one (it is refused, never written).
func decodeFrame(h nats.Header, data []byte) (*frame, error) {
	f := &frame{ring: h.Get(HdrRing), name: h.Get(HdrMessage), data: data}
	if f.ring == "" {
		return nil, fmt.Errorf("not a tachyon-bridge message: no %s header", HdrRing)
	}
	var err error
	get := func(key string, base int) uint64 {
		if err != nil {
			return 0
		}
		var v uint64
		v, err = headerUint(h, key, base)
		return v
	}
	f.epoch = get(HdrEpoch, 10)
	f.first = get(HdrSeq, 10)
	if c := h.Get(HdrControl); c != "" {
		if c != "closed" {
			return nil, fmt.Errorf("unknown %s %q", HdrControl, c)
		}
		f.closed = true
		return f, err
	}
	f.count = get(HdrCount, 10)
	f.window = get(HdrWindow, 10)
	f.id.Fingerprint = get(HdrFingerprint, 16)
	f.id.TypeID = uint32(get(HdrTypeID, 10))
	f.id.Size = int(get(HdrSize, 10))
	f.id.Align = int(get(HdrAlign, 10))
	switch {
	case err != nil:
		return nil, err
	case f.count == 0 || f.id.Size == 0:
		return nil, fmt.Errorf("%s %d, %s %d: carries nothing", HdrCount, f.count, HdrSize, f.id.Size)
	case uint64(len(data)) != f.count*uint64(f.id.Size):
		return nil, fmt.Errorf("%d data bytes, want %s %d x %s %d = %d", len(data), HdrCount, f.count, HdrSize, f.id.Size, f.count*uint64(f.id.Size))
	case f.window > f.first:
		return nil, fmt.Errorf("%s %d is after %s %d", HdrWindow, f.window, HdrSeq, f.first)
	}
	return f, nil
}

// encoder fills the headers of the NATS messages of one out window without
// allocating: every message's header map and value slices are made once, and
// the per-message values are strings over an arena that is reset per window
// (a window's messages are all acknowledged before the next is encoded, and
// nats.go keeps a message only until its acknowledgement, to retry it).
type encoder struct {
	msgs   []nats.Msg
	arena  []byte
	idBase string // RING:EPOCH:
	static map[string]string
}

// perMessage are the header keys whose value changes per message.
var perMessage = [...]string{HdrMsgID, HdrSeq, HdrCount, HdrWindow}

func newEncoder(subject, ringName string, epoch uint64, id ring.Identity, message string, maxMsgs int) *encoder {
	e := &encoder{
		msgs:   make([]nats.Msg, maxMsgs),
		idBase: ringName + ":" + strconv.FormatUint(epoch, 10) + ":",
		static: map[string]string{
			HdrFingerprint: fmt.Sprintf("%#016x", id.Fingerprint),
			HdrTypeID:      strconv.FormatUint(uint64(id.TypeID), 10),
			HdrSize:        strconv.Itoa(id.Size),
			HdrAlign:       strconv.Itoa(id.Align),
			HdrRing:        ringName,
			HdrEpoch:       strconv.FormatUint(epoch, 10),
		},
	}
	if message != "" {
		e.static[HdrMessage] = message
	}
	// Per message: the id base, then at most 3 numbers of 20 digits and
	// their separators.
	e.arena = make([]byte, 0, maxMsgs*(len(e.idBase)+4*21))
	for i := range e.msgs {
		h := make(nats.Header, len(e.static)+len(perMessage))
		for k, v := range e.static {
			h[k] = []string{v}
		}
		for _, k := range perMessage {
			h[k] = []string{""}
		}
		e.msgs[i] = nats.Msg{Subject: subject, Header: h}
	}
	return e
}

// reset starts a window.
func (e *encoder) reset() { e.arena = e.arena[:0] }

// str returns the arena bytes from start as a string that shares them.
func (e *encoder) str(start int) string {
	return unsafe.String(&e.arena[start], len(e.arena)-start)
}

func (e *encoder) num(v uint64) string {
	start := len(e.arena)
	e.arena = strconv.AppendUint(e.arena, v, 10)
	return e.str(start)
}

// encode fills message i of the window for count ring messages from seq.
func (e *encoder) encode(i int, data []byte, seq, count, window uint64) *nats.Msg {
	m := &e.msgs[i]
	m.Data = data
	start := len(e.arena)
	e.arena = append(e.arena, e.idBase...)
	e.arena = strconv.AppendUint(e.arena, seq, 10)
	e.arena = append(e.arena, '+')
	e.arena = strconv.AppendUint(e.arena, count, 10)
	m.Header[HdrMsgID][0] = e.str(start)
	m.Header[HdrSeq][0] = e.num(seq)
	m.Header[HdrCount][0] = e.num(count)
	m.Header[HdrWindow][0] = e.num(window)
	return m
}

// closedMsg is the control message that says the source ring ended at seq.
func (e *encoder) closedMsg(subject string, seq uint64) *nats.Msg {
	h := nats.Header{}
	for _, k := range []string{HdrRing, HdrEpoch, HdrFingerprint, HdrTypeID, HdrSize, HdrAlign, HdrMessage} {
		if v, ok := e.static[k]; ok {
			h.Set(k, v)
		}
	}
	h.Set(HdrControl, "closed")
	h.Set(HdrSeq, strconv.FormatUint(seq, 10))
	h.Set(HdrMsgID, e.idBase+"closed")
	return &nats.Msg{Subject: subject, Header: h}
}
