package ring

import (
	"fmt"
	"io"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// Stats is a snapshot of a ring read without registering: its identity,
// geometry, producer state and every non-free subscriber entry.
type Stats struct {
	Name            string
	ABIVersion      uint32
	Fingerprint     uint64
	TypeID          uint32
	MessageSize     int
	MessageAlign    int
	SlotSize        int
	SlotLayout      SlotLayout // SlotPacked or SlotLine
	Fences          Fences     // FencesStrong or FencesAsymmetric (the ring's mode)
	Capacity        uint64
	Policy          Policy
	Batch           int
	MaxSubscribers  int
	SegmentSize     uint64
	LivenessTimeout time.Duration
	Created         time.Time
	Producer        ProducerStats
	// Subscribers lists the entries that are not free, in table order.
	Subscribers []SubscriberStats
	// Fill is how many published messages the slowest active subscriber
	// has not read (at most Capacity).
	Fill uint64
}

// ProducerStats is the producer part of Stats.
type ProducerStats struct {
	State         string // "active", "closed" or "none"
	PID           int
	Alive         bool // its liveness lock is held (a write lock: a reader's lock does not count)
	StrongFences  bool // its hot side fences (a strong ring, or a membarrier-less subscriber joined)
	Published     uint64
	DroppedNewest uint64
	HeartbeatAge  time.Duration
}

// SubscriberStats is one subscriber entry of Stats.
type SubscriberStats struct {
	Index        int
	State        string // "joining", "active", "evicted" (by the producer) or "dead" (its owner is gone)
	PID          int
	Alive        bool // its liveness lock is held
	StrongFences bool // a membarrier-less subscriber (on an asymmetric ring)
	Generation   uint64
	MaxLag       uint64 // 0 = unlimited
	Key          uint64 // SubscriberKey of a named subscriber, 0 if anonymous
	Head         uint64
	Received     uint64
	Dropped      uint64
	Lag          uint64
	HeartbeatAge time.Duration
}

// Inspect reads the named ring's header and tables without registering. It
// works for any message type, validates the header like Attach, and returns
// an error (never a crash) for a missing, truncated, empty or corrupt
// segment.
func Inspect(name string) (*Stats, error) {
	if err := ValidateName(name); err != nil {
		return nil, fmt.Errorf("inspect: %w", err)
	}
	s, err := openSegment("inspect", name, false, 0, true)
	if err != nil {
		return nil, err
	}
	defer s.host.release()
	return statsOf(s)
}

func sat(a, b uint64) uint64 {
	if a < b {
		return 0
	}
	return a - b
}

func age(now, then uint64) time.Duration { return time.Duration(sat(now, then)) }

// statsOf loads every field once (atomic loads: live values written by other
// processes) and treats them as untrusted numbers, never as bounds.
func statsOf(s *shm) (st *Stats, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer faultError("inspect", s.name, &err)
	h, g := &s.hdr, &s.hdr.geo
	now := monoNow()
	st = &Stats{
		Name:            s.name,
		ABIVersion:      ABIVersion,
		Fingerprint:     h.fingerprint,
		TypeID:          h.typeID,
		MessageSize:     int(g.msgSize),
		MessageAlign:    int(g.msgAlign),
		SlotSize:        int(g.slotSize),
		SlotLayout:      SlotPacked,
		Fences:          FencesStrong,
		Capacity:        g.capacity,
		Policy:          h.policy,
		Batch:           int(h.batch),
		MaxSubscribers:  int(g.maxSubs),
		SegmentSize:     g.segSize,
		LivenessTimeout: time.Duration(h.livenessNs),
		Created:         time.Unix(0, int64(h.createdNs)),
	}
	if g.lineSlots {
		st.SlotLayout = SlotLine
	}
	if h.asymFences {
		st.Fences = FencesAsymmetric
	}
	tail := atomic.LoadUint64(s.u64(offTail))
	p := &st.Producer
	p.Published = tail
	p.DroppedNewest = atomic.LoadUint64(s.u64(offDroppedNewst))
	p.PID = int(atomic.LoadUint32(s.u32(offProdPID)))
	p.HeartbeatAge = age(now, atomic.LoadUint64(s.u64(offProdHeartbeat)))
	p.Alive = s.host.producerAlive()
	p.StrongFences = atomic.LoadUint32(s.u32(offProdFences)) == fencesStrong
	switch atomic.LoadUint32(s.u32(offProdState)) {
	case prodActive:
		p.State = "active"
	case prodClosed:
		p.State = "closed"
	case prodNone:
		p.State = "none"
	default:
		p.State = "invalid"
	}
	minHead, any := uint64(0), false
	for i := 0; i < int(g.maxSubs); i++ {
		e := s.entryOff(i)
		state := atomic.LoadUint32(s.u32(e + entState))
		if state == entFree {
			continue
		}
		sub := SubscriberStats{
			Index:        i,
			PID:          int(atomic.LoadUint32(s.u32(e + entPID))),
			Alive:        s.host.entryAlive(i),
			StrongFences: atomic.LoadUint32(s.u32(e+entFlags))&entFlagStrong != 0,
			Generation:   atomic.LoadUint64(s.u64(e + entGen)),
			MaxLag:       atomic.LoadUint64(s.u64(e + entMaxLag)),
			Key:          atomic.LoadUint64(s.u64(e + entKey)),
			Head:         atomic.LoadUint64(s.u64(e + entHead)),
			Received:     atomic.LoadUint64(s.u64(e + entReceived)),
			Dropped:      atomic.LoadUint64(s.u64(e + entDropped)),
			HeartbeatAge: age(now, atomic.LoadUint64(s.u64(e+entHeartbeat))),
		}
		sub.Lag = sat(tail, sub.Head)
		evicted := atomic.LoadUint64(s.evictedWord(i)) == sub.Generation
		switch {
		case state != entJoining && state != entActive:
			sub.State = "invalid"
		case evicted && sub.Alive:
			sub.State = "evicted"
		case !sub.Alive:
			sub.State = "dead"
		case state == entJoining:
			sub.State = "joining"
		default:
			sub.State = "active"
			if !any || sub.Head < minHead {
				minHead, any = sub.Head, true
			}
		}
		st.Subscribers = append(st.Subscribers, sub)
	}
	if any {
		st.Fill = min(sat(tail, minHead), g.capacity)
	}
	return st, nil
}

// WriteStats renders st as a human-readable table: the ring's identity and
// geometry, the producer's state, the fill level and one row per
// subscriber (received, dropped, lag, pid, alive).
func WriteStats(w io.Writer, st *Stats) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	alive := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	p := &st.Producer
	fmt.Fprintf(tw, "ring\t%s\n", st.Name)
	fmt.Fprintf(tw, "message\ttype id %d, fingerprint %#016x, %d B (align %d), slot %d B\n",
		st.TypeID, st.Fingerprint, st.MessageSize, st.MessageAlign, st.SlotSize)
	fmt.Fprintf(tw, "geometry\t%d %s slots, policy %s, batch %d, %d subscriber entries, %d B, ABI v%d\n",
		st.Capacity, st.SlotLayout, st.Policy, st.Batch, st.MaxSubscribers, st.SegmentSize, st.ABIVersion)
	fences := st.Fences.String()
	if st.Fences == FencesAsymmetric && p.StrongFences {
		fences += " (the producer fences for a membarrier-less subscriber)"
	}
	fmt.Fprintf(tw, "fences\t%s\n", fences)
	fmt.Fprintf(tw, "producer\t%s, pid %d, alive %s, published %d, dropped %d, heartbeat %v ago\n",
		p.State, p.PID, alive(p.Alive), p.Published, p.DroppedNewest, p.HeartbeatAge.Round(time.Millisecond))
	fmt.Fprintf(tw, "fill\t%d/%d (%.1f%%)\n", st.Fill, st.Capacity, 100*float64(st.Fill)/float64(max(st.Capacity, 1)))
	fmt.Fprintf(tw, "\nSUB\tSTATE\tPID\tALIVE\tGEN\tMAX_LAG\tRECEIVED\tDROPPED\tLAG\tHEARTBEAT\tKEY\n")
	for _, s := range st.Subscribers {
		lag := "unlimited"
		if s.MaxLag != 0 {
			lag = strconv.FormatUint(s.MaxLag, 10)
		}
		key := "-"
		if s.Key != 0 {
			key = fmt.Sprintf("%#016x", s.Key)
		}
		fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%d\t%s\t%d\t%d\t%d\t%v\t%s\n", s.Index, s.State, s.PID, alive(s.Alive),
			s.Generation, lag, s.Received, s.Dropped, s.Lag, s.HeartbeatAge.Round(time.Millisecond), key)
	}
	if len(st.Subscribers) == 0 {
		fmt.Fprintf(tw, "(no subscribers)\n")
	}
	return tw.Flush()
}
