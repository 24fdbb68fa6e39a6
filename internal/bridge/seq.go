package bridge

import "slices"

// sequencer puts the frames of one source ring into the destination ring
// exactly once and in ring order, whatever order JetStream delivers them in.
//
// What it relies on (docs/BRIDGE.md, "Order"): the out side publishes a
// window of ring messages and publishes the next window only once every
// message of this one is acknowledged, publishing again what failed. So a
// frame can come before an earlier one of its own window (the earlier one
// failed and was published again later), never before one of an earlier
// window; and frames carry their window's first sequence. A gap before the
// current window is final (the source lost those messages, and counted
// them); a gap inside it is waited for, the frames after it held.
type sequencer struct {
	pos    position // next expected; valid when known
	known  bool
	window uint64 // the latest window seen
	held   []*frame
	limit  int // frames held at most; beyond, the gap is declared final

	// commit writes f's messages from index skip on and returns how many it
	// wrote (all of them, unless it fails); drop resolves a duplicate.
	commit func(f *frame, skip uint64) (uint64, error)
	drop   func(f *frame)
	// gap reports source sequences [from, to) of epoch that never came.
	gap func(epoch, from, to uint64)

	dups, gaps, reordered uint64
}

// offer takes the next frame JetStream delivered; f is the caller's to reuse
// after. closed reports a control frame that ended the current source ring.
func (s *sequencer) offer(f *frame) (closed bool, err error) {
	switch {
	case !s.known:
		// The first frame ever: its window's earlier frames may still come.
		s.known, s.pos = true, position{Ring: f.ring, Epoch: f.epoch, Next: f.window}
		if f.closed {
			s.pos.Next = f.first
		}
		s.window = f.window
	case f.epoch < s.pos.Epoch:
		s.dup(f) // an older incarnation of the ring, already passed
		return false, nil
	case f.epoch > s.pos.Epoch:
		// The source ring was created again: what is held of the old
		// incarnation is all that will come of it.
		if err := s.flush(); err != nil {
			return false, err
		}
		s.pos = position{Ring: f.ring, Epoch: f.epoch}
		s.window = f.window
	}
	if f.closed {
		if err := s.flush(); err != nil {
			return false, err
		}
		s.skipTo(f.first)
		s.drop(f)
		return true, nil
	}
	if f.end() <= s.pos.Next {
		s.dup(f)
		return false, nil
	}
	if f.window > s.window {
		// Every window before f's was complete when f was published.
		if err := s.flush(); err != nil {
			return false, err
		}
		s.window = f.window
	}
	if f.window == s.window {
		s.skipTo(f.window)
	}
	if f.first > s.pos.Next {
		i, _ := slices.BinarySearchFunc(s.held, f.first, func(h *frame, first uint64) int { return cmpU64(h.first, first) })
		held := *f // f may be reused for the next frame
		s.held = slices.Insert(s.held, i, &held)
		s.reordered++
		if len(s.held) <= s.limit {
			return false, nil
		}
		return false, s.flush()
	}
	if err := s.deliver(f); err != nil {
		return false, err
	}
	return false, s.drain()
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// skipTo declares the source sequences before next lost.
func (s *sequencer) skipTo(next uint64) {
	if next > s.pos.Next {
		s.gaps += next - s.pos.Next
		if s.gap != nil {
			s.gap(s.pos.Epoch, s.pos.Next, next)
		}
		s.pos.Next = next
	}
}

func (s *sequencer) dup(f *frame) {
	s.dups += f.count
	s.drop(f)
}

// deliver commits the part of f not yet committed; f.first <= pos.Next.
func (s *sequencer) deliver(f *frame) error {
	skip := s.pos.Next - f.first
	s.dups += skip
	n, err := s.commit(f, skip)
	s.pos.Next += n
	return err
}

// drain delivers the held frames that are now next in line.
func (s *sequencer) drain() error {
	for len(s.held) > 0 && s.held[0].first <= s.pos.Next {
		f := s.held[0]
		s.held = s.held[1:]
		if f.end() <= s.pos.Next {
			s.dup(f)
			continue
		}
		if err := s.deliver(f); err != nil {
			return err
		}
	}
	return nil
}

// flush delivers every held frame in order, declaring the gaps before them
// final.
func (s *sequencer) flush() error {
	for len(s.held) > 0 {
		s.skipTo(s.held[0].first)
		if err := s.drain(); err != nil {
			return err
		}
	}
	return nil
}
