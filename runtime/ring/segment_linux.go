//go:build linux

package ring

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ShmDir is the directory of the POSIX shared-memory namespace on Linux.
const ShmDir = "/dev/shm"

// staleInitAge is how old a segment that never became ready must be before
// Remove treats its creator as dead rather than still initialising.
const staleInitAge = 5 * time.Second

func shmPath(name string) string { return ShmDir + "/" + name }

// fileHost implements host over a segment's file descriptor: flock(2) for the
// registry lock, OFD byte-range locks (F_OFD_SETLK) for liveness.
type fileHost struct {
	fd       int
	tableOff uint64
	mem      []byte
}

func retryEINTR(f func() error) error {
	for {
		if err := f(); err != unix.EINTR {
			return err
		}
	}
}

func (h *fileHost) lockRegistry(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		err := retryEINTR(func() error { return unix.Flock(h.fd, unix.LOCK_EX|unix.LOCK_NB) })
		if err == nil {
			return nil
		}
		if err != unix.EWOULDBLOCK {
			return err
		}
		if time.Now().After(deadline) {
			return ErrTimeout
		}
		time.Sleep(100 * time.Microsecond)
	}
}

func (h *fileHost) unlockRegistry() { _ = unix.Flock(h.fd, unix.LOCK_UN) }

func (h *fileHost) ofd(cmd int, typ int16, start, n uint64) (unix.Flock_t, error) {
	lk := unix.Flock_t{Type: typ, Whence: io.SeekStart, Start: int64(start), Len: int64(n)}
	err := retryEINTR(func() error { return unix.FcntlFlock(uintptr(h.fd), cmd, &lk) })
	return lk, err
}

func (h *fileHost) tryLock(start, n uint64) (bool, error) {
	_, err := h.ofd(unix.F_OFD_SETLK, unix.F_WRLCK, start, n)
	switch err {
	case nil:
		return true, nil
	case unix.EAGAIN, unix.EACCES:
		return false, nil
	}
	return false, err
}

// held reports whether another open file description holds a write lock on
// the range. The probe asks about a read lock, which only a write lock
// conflicts with: a read lock — which anyone who can open the segment
// read-only may take — never makes a dead peer look alive. A write lock
// needs a descriptor opened for writing. An error counts as held: never
// declare a peer dead on a guess.
func (h *fileHost) held(start, n uint64) bool {
	lk, err := h.ofd(unix.F_OFD_GETLK, unix.F_RDLCK, start, n)
	return err != nil || lk.Type != unix.F_UNLCK
}

func (h *fileHost) entryRange(i int) (uint64, uint64) {
	return h.tableOff + uint64(i)*EntrySize, EntrySize
}

func (h *fileHost) tryLockEntry(i int) (bool, error) { return h.tryLock(h.entryRange(i)) }

func (h *fileHost) unlockEntry(i int) {
	s, n := h.entryRange(i)
	_, _ = h.ofd(unix.F_OFD_SETLK, unix.F_UNLCK, s, n)
}

func (h *fileHost) entryAlive(i int) bool { return h.held(h.entryRange(i)) }

func (h *fileHost) tryLockProducer() (bool, error) { return h.tryLock(prodLockStart, prodLockLen) }

func (h *fileHost) unlockProducer() {
	_, _ = h.ofd(unix.F_OFD_SETLK, unix.F_UNLCK, prodLockStart, prodLockLen)
}

func (h *fileHost) producerAlive() bool { return h.held(prodLockStart, prodLockLen) }

func (h *fileHost) release() error {
	var err error
	if h.mem != nil {
		err = unix.Munmap(h.mem)
		h.mem = nil
	}
	if h.fd >= 0 {
		err = errors.Join(err, unix.Close(h.fd))
		h.fd = -1
	}
	return err
}

// createSegment creates, sizes, maps and initialises the segment, and returns
// it with the producer's liveness lock held.
func createSegment(name string, hdr *header, mode os.FileMode) (s *shm, err error) {
	path := shmPath(name)
	// Created 0600 whatever the requested mode: nobody else can open it
	// (and lock a range of it) before our liveness lock is taken; the
	// requested mode is applied afterwards.
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0o600)
	if err != nil {
		if err == unix.EEXIST {
			return nil, fmt.Errorf("create %q: %w: %s %s", name, ErrExists, path, describeExisting(name))
		}
		return nil, fmt.Errorf("create %q: %w", name, &os.PathError{Op: "open", Path: path, Err: err})
	}
	s, err = initSegment(name, fd, hdr, mode)
	if err != nil {
		_ = unix.Unlink(path)
	}
	return s, err
}

// initSegment sizes, maps and initialises a new segment's file and returns
// it with the producer's liveness lock held. On error it closes fd.
func initSegment(name string, fd int, hdr *header, mode os.FileMode) (s *shm, err error) {
	h := &fileHost{fd: fd, tableOff: hdr.geo.tableOff}
	defer func() {
		if err != nil {
			_ = h.release()
		}
	}()
	// The producer's liveness lock first: from now on Remove and every
	// peer see a live creator, whatever state the file is in.
	if ok, err := h.tryLockProducer(); err != nil || !ok {
		return nil, fmt.Errorf("create %q: producer lock: %v", name, err)
	}
	// The umask filtered the mode given to open: set it exactly.
	if err := unix.Fchmod(fd, uint32(mode.Perm())); err != nil {
		return nil, fmt.Errorf("create %q: fchmod: %w", name, err)
	}
	size := hdr.geo.segSize
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(fd, &sfs); err == nil {
		if free := sfs.Bavail * uint64(sfs.Bsize); sfs.Blocks != 0 && size > free {
			return nil, fmt.Errorf("create %q: %w: needs %d bytes, %s has %d free", name, ErrNoSpace, size, ShmDir, free)
		}
	}
	// Reserve the tmpfs pages now, so a full filesystem is an error here and
	// not a SIGBUS on first touch.
	if err := retryEINTR(func() error { return unix.Fallocate(fd, 0, 0, int64(size)) }); err != nil {
		if err == unix.ENOSPC {
			return nil, fmt.Errorf("create %q: %w: fallocate %d bytes: %v", name, ErrNoSpace, size, err)
		}
		if err != unix.EOPNOTSUPP {
			return nil, fmt.Errorf("create %q: fallocate: %w", name, err)
		}
		if err := unix.Ftruncate(fd, int64(size)); err != nil {
			return nil, fmt.Errorf("create %q: ftruncate: %w", name, err)
		}
	}
	mem, err := unix.Mmap(fd, 0, int(size), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("create %q: mmap %d bytes: %w", name, size, err)
	}
	h.mem = mem
	s = newShm(name, mem, *hdr, h)
	s.initSegment(uint32(processID()), processStartTime())
	return s, nil
}

// openSegment opens and validates an existing segment. It never maps more
// than the validated segment size, and never more than fstat reports.
func openSegment(op, name string, write bool, readyTimeout time.Duration, allowForeign bool) (s *shm, err error) {
	flags := unix.O_RDONLY
	if write {
		flags = unix.O_RDWR
	}
	fd, err := openRegular(op, name, flags)
	if err != nil {
		return nil, err
	}
	return openFD(op, name, fd, write, readyTimeout, allowForeign)
}

// openRegular opens /dev/shm/NAME without ever waiting on what is there:
// the name is checked with lstat first, the open never follows a link and
// never blocks (a FIFO squatting on the name would block a plain open), and
// fstat confirms a regular file before the caller touches it. Anyone may
// create files in /dev/shm, so the name may hold anything.
func openRegular(op, name string, flags int) (int, error) {
	path := shmPath(name)
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		if err == unix.ENOENT {
			return -1, fmt.Errorf("%s %q: %w: %s", op, name, ErrNotFound, path)
		}
		return -1, fmt.Errorf("%s %q: %w", op, name, &os.PathError{Op: "lstat", Path: path, Err: err})
	}
	if err := regularFile(op, name, &st); err != nil {
		return -1, err
	}
	fd, err := unix.Open(path, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		if err == unix.ENOENT {
			return -1, fmt.Errorf("%s %q: %w: %s", op, name, ErrNotFound, path)
		}
		return -1, fmt.Errorf("%s %q: %w", op, name, &os.PathError{Op: "open", Path: path, Err: err})
	}
	if err := unix.Fstat(fd, &st); err != nil {
		_ = unix.Close(fd)
		return -1, fmt.Errorf("%s %q: fstat: %w", op, name, err)
	}
	if err := regularFile(op, name, &st); err != nil {
		_ = unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// regularFile refuses anything but a regular file, naming what it is.
func regularFile(op, name string, st *unix.Stat_t) error {
	kind := ""
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		return nil
	case unix.S_IFIFO:
		kind = "a FIFO (named pipe)"
	case unix.S_IFSOCK:
		kind = "a Unix socket"
	case unix.S_IFCHR:
		kind = "a character device"
	case unix.S_IFBLK:
		kind = "a block device"
	case unix.S_IFDIR:
		kind = "a directory"
	case unix.S_IFLNK:
		kind = "a symbolic link"
	default:
		kind = fmt.Sprintf("a file of type %#o", st.Mode&unix.S_IFMT)
	}
	return fmt.Errorf("%s %q: %w: %s is %s, not a ring segment", op, name, ErrInsecure, shmPath(name), kind)
}

// openFD validates and maps the segment open on fd (which it owns: closed
// on error, kept by the returned handle).
func openFD(op, name string, fd int, write bool, readyTimeout time.Duration, allowForeign bool) (s *shm, err error) {
	prot := unix.PROT_READ
	if write {
		prot |= unix.PROT_WRITE
	}
	h := &fileHost{fd: fd}
	defer func() {
		if err != nil {
			_ = h.release()
		}
	}()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("%s %q: fstat: %w", op, name, err)
	}
	if err := regularFile(op, name, &st); err != nil {
		return nil, err
	}
	if !allowForeign && st.Uid != uint32(os.Geteuid()) {
		return nil, fmt.Errorf("%s %q: %w: owner uid %d, want %d", op, name, ErrInsecure, st.Uid, os.Geteuid())
	}
	if st.Mode&0o002 != 0 {
		return nil, fmt.Errorf("%s %q: %w: mode %#o is world-writable", op, name, ErrInsecure, st.Mode&0o777)
	}
	var raw [HeaderSize]byte
	hdr, err := readHeader(op, name, fd, raw[:], readyTimeout)
	if err != nil {
		return nil, err
	}
	// Size from fstat, taken again after validation, never from the header
	// alone: the mapping must lie inside the file.
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("%s %q: fstat: %w", op, name, err)
	}
	if st.Size < 0 || uint64(st.Size) < hdr.geo.segSize {
		return nil, fmt.Errorf("%s %q: %w: file is %d bytes, header says %d", op, name, ErrCorrupt, st.Size, hdr.geo.segSize)
	}
	mem, err := unix.Mmap(fd, 0, int(hdr.geo.segSize), prot, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("%s %q: mmap %d bytes: %w", op, name, hdr.geo.segSize, err)
	}
	h.mem = mem
	h.tableOff = hdr.geo.tableOff
	return newShm(name, mem, hdr, h), nil
}

// readHeader maps the header alone, waits (bounded) for the ready word, and
// decodes a private copy of it.
func readHeader(op, name string, fd int, raw []byte, readyTimeout time.Duration) (hdr header, err error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return header{}, fmt.Errorf("%s %q: fstat: %w", op, name, err)
	}
	deadline := time.Now().Add(readyTimeout)
	for st.Size < HeaderSize {
		// A creator sizes the file right after creating it: an empty file
		// is a segment being built (or whose creator died before sizing
		// it), not a corrupt one. Wait for it like for the ready word.
		if st.Size != 0 {
			return header{}, fmt.Errorf("%s %q: %w: file is %d bytes, smaller than the %d-byte header", op, name, ErrCorrupt, st.Size, HeaderSize)
		}
		if !time.Now().Before(deadline) {
			return header{}, fmt.Errorf("%s %q: %w: the file is still empty (being created, or its creator died first)", op, name, ErrNotReady)
		}
		time.Sleep(time.Millisecond)
		if err := unix.Fstat(fd, &st); err != nil {
			return header{}, fmt.Errorf("%s %q: fstat: %w", op, name, err)
		}
	}
	m, err := unix.Mmap(fd, 0, HeaderSize, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return header{}, fmt.Errorf("%s %q: mmap header: %w", op, name, err)
	}
	defer unix.Munmap(m)
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer faultError(op, name, &err)
	for {
		// Ready load (an acquire; pairs with the creator's last store),
		// then a private copy of the header that is validated and used.
		ready := atomic.LoadUint32((*uint32)(unsafe.Pointer(&m[offReady])))
		copy(raw, m)
		if ready == readyReady {
			binary.LittleEndian.PutUint32(raw[offReady:], ready)
			break
		}
		if ready != readyInit || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	hdr, err = decodeHeader(raw)
	if err != nil {
		return header{}, fmt.Errorf("%s %q: %w", op, name, err)
	}
	return hdr, nil
}

// describeExisting says who owns an existing segment and whether it is
// stale, for the error of a Create that found the name taken.
func describeExisting(name string) string {
	st, err := Inspect(name)
	if err != nil {
		return fmt.Sprintf("(not a readable ring: %v)", err)
	}
	who := fmt.Sprintf("was created %v ago by pid %d", time.Since(st.Created).Round(time.Second), st.Producer.PID)
	if st.Producer.Alive {
		return who + ", whose publisher is alive: pick another name or stop that publisher"
	}
	return who + ", whose publisher is dead: it is stale; remove it with ring.Remove or `tachyon-gen stat --reap " + name + "`"
}

// Remove deletes a ring segment that no live publisher holds: the documented
// way to clean up after a crashed owner. It refuses (ErrInUse) a segment
// whose publisher is alive or that is being created, and (ErrCorrupt) a file
// that is not a ring segment.
func Remove(name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	path := shmPath(name)
	fd, err := openRegular("remove", name, unix.O_RDONLY)
	if err != nil {
		return err
	}
	h := &fileHost{fd: fd}
	defer h.release()
	// No lock is taken: the producer's liveness lock alone says whether the
	// ring is in use (its creator takes it before anything else), and a
	// lock someone else holds cannot keep a dead ring from being removed.
	if h.producerAlive() {
		return fmt.Errorf("remove %q: %w: its publisher is alive", name, ErrInUse)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("remove %q: fstat: %w", name, err)
	}
	var raw [16]byte
	n, _ := unix.Pread(fd, raw[:], 0)
	magic := binary.LittleEndian.Uint64(raw[:8])
	switch {
	case n >= 8 && magic == Magic:
	case magic == 0:
		// A creator that died before writing the header, or one still
		// initialising: only the former is stale.
		if age := time.Since(time.Unix(st.Mtim.Unix())); age < staleInitAge {
			return fmt.Errorf("remove %q: %w: not initialised yet (%v old)", name, ErrInUse, age.Round(time.Millisecond))
		}
	default:
		return fmt.Errorf("remove %q: %w: magic %#016x, not a ring segment; not removed", name, ErrCorrupt, magic)
	}
	if err := unix.Unlink(path); err != nil && err != unix.ENOENT {
		return fmt.Errorf("remove %q: %w", name, err)
	}
	return nil
}

// RemoveStale removes every ring segment whose name starts with prefix and
// whose publisher is dead, and returns their names. Live rings, rings being
// created and files that are not rings are left alone.
func RemoveStale(prefix string) ([]string, error) {
	entries, err := os.ReadDir(ShmDir)
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs error
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, prefix) || ValidateName(name) != nil || !e.Type().IsRegular() {
			continue
		}
		switch err := Remove(name); {
		case err == nil:
			removed = append(removed, name)
		case errors.Is(err, ErrInUse), errors.Is(err, ErrNotFound), errors.Is(err, ErrCorrupt):
		default:
			errs = errors.Join(errs, err)
		}
	}
	return removed, errs
}

// unlinkOwned removes the owner's segment name on close, unless the name no
// longer refers to this segment's file (someone removed it and another ring
// now has the name: that one is not ours to delete).
func unlinkOwned(name string, h host) error {
	if fh, ok := h.(*fileHost); ok && fh.fd >= 0 {
		var own, cur unix.Stat_t
		if unix.Fstat(fh.fd, &own) == nil {
			if err := unix.Lstat(shmPath(name), &cur); err != nil || own.Dev != cur.Dev || own.Ino != cur.Ino {
				return nil
			}
		}
	}
	return unlinkSegment(name)
}

// unlinkSegment removes a segment name.
func unlinkSegment(name string) error {
	if err := unix.Unlink(shmPath(name)); err != nil && err != unix.ENOENT {
		return fmt.Errorf("close %q: unlink: %w", name, err)
	}
	return nil
}
