// Package bridge moves a ring's messages to NATS JetStream (Out) and from
// JetStream into a ring (In), as unchanged bytes with their identity. The
// command tachyon-bridge is its front end; docs/BRIDGE.md is its contract.
package bridge

import (
	"fmt"
	"strconv"
	"strings"
	"unsafe"

	"github.com/nats-io/nats.go"

	"github.com/tachyon-io/tachyon/runtime/ring"
)

// The headers of every NATS message the bridge publishes (docs/BRIDGE.md,
// "Wire format"): three, because JetStream's work per message grows with
// its headers.
//
//	Nats-Msg-Id:     RING:EPOCH:SEQ+COUNT            (RING:EPOCH:closed)
//	Tachyon-Message: fingerprint=0x1b43e6c9e14a376c type=1 size=64 align=8 name=market.Message
//	Tachyon-Seq:     ring=RING epoch=EPOCH seq=SEQ count=COUNT window=WINDOW   (... seq=SEQ closed)
//
// EPOCH is the source ring's creation time (ns since 1970): with RING it
// names the sequence space, which restarts at 0 when the ring is created
// again. SEQ is the ring sequence of the first message carried, COUNT how
// many (K when packed), WINDOW the sequence that opened the out window.
const (
	HdrMsgID   = "Nats-Msg-Id"
	HdrMessage = "Tachyon-Message"
	HdrSeq     = "Tachyon-Seq"
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

// fields calls fn for each key=value (or bare key) of a header value.
func fields(v string, fn func(k, v string) error) error {
	for v != "" {
		var f string
		f, v, _ = strings.Cut(v, " ")
		if f == "" {
			continue
		}
		k, val, _ := strings.Cut(f, "=")
		if err := fn(k, val); err != nil {
			return err
		}
	}
	return nil
}

func parseNum(hdr, k, v string, base int) (uint64, error) {
	if base == 16 {
		if len(v) < 3 || v[:2] != "0x" {
			return 0, fmt.Errorf("%s %s=%q is not 0x-prefixed hex", hdr, k, v)
		}
		v = v[2:]
	}
	n, err := strconv.ParseUint(v, base, 64)
	if err != nil {
		return 0, fmt.Errorf("%s %s=%q is not a number", hdr, k, v)
	}
	return n, nil
}

// decodeFrame reads a bridge message's headers into f and checks its data
// length; an error says why the message is not one (it is refused, never
// written). It allocates nothing.
func decodeFrame(f *frame, h nats.Header, data []byte) error {
	*f = frame{data: data}
	seq, msg := h.Get(HdrSeq), h.Get(HdrMessage)
	if seq == "" {
		return fmt.Errorf("not a tachyon-bridge message: no %s header", HdrSeq)
	}
	var have [8]bool // ring epoch seq count window | fingerprint type size
	err := fields(seq, func(k, v string) (err error) {
		switch k {
		case "ring":
			f.ring, have[0] = v, true
		case "epoch":
			f.epoch, err = parseNum(HdrSeq, k, v, 10)
			have[1] = true
		case "seq":
			f.first, err = parseNum(HdrSeq, k, v, 10)
			have[2] = true
		case "count":
			f.count, err = parseNum(HdrSeq, k, v, 10)
			have[3] = true
		case "window":
			f.window, err = parseNum(HdrSeq, k, v, 10)
			have[4] = true
		case "closed":
			f.closed = true
		}
		return err
	})
	if err != nil {
		return err
	}
	if !have[0] || !have[1] || !have[2] {
		return fmt.Errorf("%s %q: needs ring, epoch and seq", HdrSeq, seq)
	}
	if f.closed {
		return nil
	}
	var size, align, typeID uint64
	err = fields(msg, func(k, v string) (err error) {
		switch k {
		case "fingerprint":
			f.id.Fingerprint, err = parseNum(HdrMessage, k, v, 16)
			have[5] = true
		case "type":
			typeID, err = parseNum(HdrMessage, k, v, 10)
			have[6] = true
		case "size":
			size, err = parseNum(HdrMessage, k, v, 10)
			have[7] = true
		case "align":
			align, err = parseNum(HdrMessage, k, v, 10)
		case "name":
			f.name = v
		}
		return err
	})
	f.id.TypeID, f.id.Size, f.id.Align = uint32(typeID), int(size), int(align)
	switch {
	case err != nil:
		return err
	case !have[3] || !have[4]:
		return fmt.Errorf("%s %q: needs count and window", HdrSeq, seq)
	case !have[5] || !have[6] || !have[7] || align == 0:
		return fmt.Errorf("%s %q: needs fingerprint, type, size and align", HdrMessage, msg)
	case f.count == 0 || size == 0:
		return fmt.Errorf("count %d, size %d: carries nothing", f.count, size)
	case uint64(len(data)) != f.count*size:
		return fmt.Errorf("%d data bytes, want count %d x size %d = %d", len(data), f.count, size, f.count*size)
	case f.window > f.first:
		return fmt.Errorf("window %d is after seq %d", f.window, f.first)
	}
	return nil
}

// encoder fills the headers of the NATS messages of one out window without
// allocating: every message's header map and value slices are made once, and
// the per-message values are strings over an arena that is reset per window
// (a window's messages are all acknowledged before the next is encoded, and
// nats.go keeps a message only until its acknowledgement, to retry it).
type encoder struct {
	msgs    []nats.Msg
	arena   []byte
	idBase  string // RING:EPOCH:
	seqBase string // ring=RING epoch=EPOCH seq=
	message string // the Tachyon-Message value
}

func newEncoder(subject, ringName string, epoch uint64, id ring.Identity, message string, maxMsgs int) *encoder {
	e := &encoder{
		msgs:    make([]nats.Msg, maxMsgs),
		idBase:  ringName + ":" + strconv.FormatUint(epoch, 10) + ":",
		seqBase: "ring=" + ringName + " epoch=" + strconv.FormatUint(epoch, 10) + " seq=",
		message: fmt.Sprintf("fingerprint=%#016x type=%d size=%d align=%d", id.Fingerprint, id.TypeID, id.Size, id.Align),
	}
	if message != "" {
		e.message += " name=" + message
	}
	// Per message: the two bases, then at most 4 numbers of 20 digits and
	// their separators.
	e.arena = make([]byte, 0, maxMsgs*(len(e.idBase)+len(e.seqBase)+4*30))
	for i := range e.msgs {
		e.msgs[i] = nats.Msg{Subject: subject, Header: nats.Header{
			HdrMsgID: {""}, HdrMessage: {e.message}, HdrSeq: {""},
		}}
	}
	return e
}

// reset starts a window.
func (e *encoder) reset() { e.arena = e.arena[:0] }

// str returns the arena bytes from start as a string that shares them.
func (e *encoder) str(start int) string {
	return unsafe.String(&e.arena[start], len(e.arena)-start)
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
	start = len(e.arena)
	e.arena = append(e.arena, e.seqBase...)
	e.arena = strconv.AppendUint(e.arena, seq, 10)
	e.arena = append(e.arena, " count="...)
	e.arena = strconv.AppendUint(e.arena, count, 10)
	e.arena = append(e.arena, " window="...)
	e.arena = strconv.AppendUint(e.arena, window, 10)
	m.Header[HdrSeq][0] = e.str(start)
	return m
}

// closedMsg is the control message that says the source ring ended at seq.
func (e *encoder) closedMsg(subject string, seq uint64) *nats.Msg {
	return &nats.Msg{Subject: subject, Header: nats.Header{
		HdrMsgID:   {e.idBase + "closed"},
		HdrMessage: {e.message},
		HdrSeq:     {e.seqBase + strconv.FormatUint(seq, 10) + " closed"},
	}}
}
