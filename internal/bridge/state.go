package bridge

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// position is a point in a source ring's sequence space: the next sequence
// expected from the ring incarnation epoch.
type position struct {
	Ring  string `json:"ring"`
	Epoch uint64 `json:"epoch"`
	Next  uint64 `json:"next"`
}

// runRecord is the in side's state file. The destination ring's messages
// come in runs: from index Index of the ring incarnation created at
// RingCreated on, the message at index i is source sequence
// Start.Next + (i - Index) of Start's ring. The record is written before the
// run's first message is committed, so after a crash the count of messages
// committed to the (dead) destination ring says exactly which source
// sequence was committed last, even where JetStream had not yet been told.
// Known is false until the first source message is seen; Clean marks a
// record written when the bridge stopped and closed the ring: Start is
// then final.
type runRecord struct {
	RingName    string   `json:"dest_ring"`
	RingCreated int64    `json:"dest_ring_created_ns"`
	Index       uint64   `json:"index"`
	Start       position `json:"start"`
	Known       bool     `json:"known"`
	Clean       bool     `json:"clean"`
}

// loadRecord reads the state file; a missing file is (nil, nil).
func loadRecord(path string) (*runRecord, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r runRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("state file %s: %w (remove it to start without deduplication state)", path, err)
	}
	return &r, nil
}

// save replaces the state file atomically (write, then rename): a crash
// leaves the old record or the new one, never a mix. No fsync: the
// destination ring lives in memory and does not survive a reboot either.
func (r *runRecord) save(path string) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(b)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

// resume returns where the source stood after the last message committed
// to the destination ring, and whether that is exact: committed is how many
// messages the destination incarnation the record names holds (-1 when
// that incarnation is gone).
func (r *runRecord) resume(committed int64) (position, bool) {
	p := r.Start
	switch {
	case r.Clean:
		return p, true
	case committed < 0:
		return p, false // the ring was removed: the last run's messages are in doubt
	case uint64(committed) > r.Index:
		p.Next += uint64(committed) - r.Index
	}
	return p, true
}
