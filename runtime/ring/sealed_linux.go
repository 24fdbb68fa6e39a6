//go:build linux

package ring

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// The sealed mode (ABI.md §14): the segment is an anonymous memfd whose size
// is sealed, handed to subscribers over a Unix socket with SCM_RIGHTS after a
// handshake that compares message identities. Nobody — not even a peer of
// the same uid — can shrink or grow it under a reader, which removes the
// SIGBUS risk of the named mode, and nothing appears in /dev/shm.

// sealedSeals are the seals a sealed segment carries; a subscriber refuses a
// descriptor without all of them.
const sealedSeals = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL

// Handshake messages: 32 bytes, little-endian.
//
//	hello (subscriber -> publisher): "TACHHELO", abi u32, type id u32,
//	    size u32, align u32, fingerprint u64
//	reply (publisher -> subscriber): "TACHOKAY" or "TACHNOPE", then the
//	    ring's abi, type id, size, align, fingerprint; OKAY carries the
//	    segment's descriptor as SCM_RIGHTS ancillary data.
const handshakeSize = 32

var (
	magicHello = [8]byte{'T', 'A', 'C', 'H', 'H', 'E', 'L', 'O'}
	magicOkay  = [8]byte{'T', 'A', 'C', 'H', 'O', 'K', 'A', 'Y'}
	magicNope  = [8]byte{'T', 'A', 'C', 'H', 'N', 'O', 'P', 'E'}
)

func encodeHandshake(magic [8]byte, id identity) []byte {
	b := make([]byte, handshakeSize)
	copy(b, magic[:])
	binary.LittleEndian.PutUint32(b[8:], ABIVersion)
	binary.LittleEndian.PutUint32(b[12:], id.typeID)
	binary.LittleEndian.PutUint32(b[16:], uint32(id.size))
	binary.LittleEndian.PutUint32(b[20:], uint32(id.align))
	binary.LittleEndian.PutUint64(b[24:], id.fingerprint)
	return b
}

func decodeHandshake(b []byte) (magic [8]byte, abi uint32, id identity) {
	copy(magic[:], b)
	abi = binary.LittleEndian.Uint32(b[8:])
	id = identity{
		typeID:      binary.LittleEndian.Uint32(b[12:]),
		size:        uint64(binary.LittleEndian.Uint32(b[16:])),
		align:       uint64(binary.LittleEndian.Uint32(b[20:])),
		fingerprint: binary.LittleEndian.Uint64(b[24:]),
	}
	return magic, abi, id
}

// CreateSealed creates a ring of T in an anonymous, size-sealed memfd and
// returns its publisher. name labels it in errors and in
// /proc/PID/fd ("memfd:tachyon:NAME"); nothing is created in /dev/shm.
// Subscribers reach it through Serve and DialSealed.
func CreateSealed[T Layout](name string, opts Options) (*Publisher[T], error) {
	if err := ValidateName(name); err != nil {
		return nil, fmt.Errorf("create sealed: %w", err)
	}
	hdr, err := newHeader[T]("create sealed", name, &opts)
	if err != nil {
		return nil, err
	}
	fd, err := unix.MemfdCreate("tachyon:"+name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("create sealed %q: memfd_create: %w", name, err)
	}
	s, err := initSegment(name, fd, &hdr, opts.Mode)
	if err != nil {
		return nil, err
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, sealedSeals); err != nil {
		_ = s.host.release()
		return nil, fmt.Errorf("create sealed %q: seal: %w", name, err)
	}
	// Serve hands out its own descriptor (same open file description), so
	// that it never touches the publisher's handle.
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		_ = s.host.release()
		return nil, fmt.Errorf("create sealed %q: dup: %w", name, err)
	}
	return &Publisher[T]{p: newProducer(s, opts.Timeout, opts.spin), s: s,
		sealed: &sealedInfo{fd: dup, id: hdr.identity(), name: name, closeF: func(fd int) { _ = unix.Close(fd) }}}, nil
}

// Serve accepts subscribers of a sealed ring on ln until ln is closed (it
// then returns nil) or the publisher is closed. Each connection performs
// the handshake: a subscriber whose message identity differs is refused
// with both values (on both sides: Serve logs nothing and goes on; the
// subscriber's DialSealed returns ErrMismatch). Run it in a goroutine.
func (p *Publisher[T]) Serve(ln *net.UnixListener) error {
	if p.sealed == nil {
		return fmt.Errorf("serve: %w: not a sealed ring (use CreateSealed)", ErrInvalidOptions)
	}
	for {
		conn, err := ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("serve %q: %w", p.sealed.name, err)
		}
		_ = p.handshake(conn)
		_ = conn.Close()
	}
}

// handshake answers one subscriber: its identity must equal the ring's.
func (p *Publisher[T]) handshake(conn *net.UnixConn) error {
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, handshakeSize)
	if _, err := readConn(conn, buf); err != nil {
		return err
	}
	magic, abi, theirs := decodeHandshake(buf)
	ours := p.sealed.id
	if magic != magicHello || abi != ABIVersion || compareIdentity("serve", p.sealed.name, theirs, ours) != nil {
		_, err := conn.Write(encodeHandshake(magicNope, ours))
		return err
	}
	p.sealed.mu.Lock()
	defer p.sealed.mu.Unlock()
	if p.sealed.fd < 0 { // the publisher closed
		_, err := conn.Write(encodeHandshake(magicNope, ours))
		return err
	}
	_, _, err := conn.WriteMsgUnix(encodeHandshake(magicOkay, ours), unix.UnixRights(p.sealed.fd), nil)
	return err
}

func readConn(conn *net.UnixConn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := conn.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// DialSealed connects to a sealed ring's Serve socket at path, performs the
// handshake for T, checks the received segment's seals and registers a
// subscriber. The descriptor is reopened through /proc/self/fd so this
// subscriber owns its own open file description: its liveness and registry
// locks are its own, never the publisher's.
func DialSealed[T Layout](path string, opts SubscribeOptions) (*Subscriber[T], error) {
	id, err := identityOf[T]()
	if err != nil {
		return nil, fmt.Errorf("dial %q: %w", path, err)
	}
	conn, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("dial %q: %w", path, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Write(encodeHandshake(magicHello, id)); err != nil {
		return nil, fmt.Errorf("dial %q: handshake: %w", path, err)
	}
	buf := make([]byte, handshakeSize)
	oob := make([]byte, unix.CmsgSpace(4*4)) // room for a few fds: extra ones are closed
	n, oobn, _, _, err := conn.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, fmt.Errorf("dial %q: handshake: %w", path, err)
	}
	fds, err := receivedFDs(oob[:oobn])
	if err != nil {
		return nil, fmt.Errorf("dial %q: %w", path, err)
	}
	closeAll := func(fds []int) {
		for _, fd := range fds {
			_ = unix.Close(fd)
		}
	}
	if n < handshakeSize {
		if n == 0 {
			closeAll(fds)
			return nil, fmt.Errorf("dial %q: handshake: the publisher closed the connection", path)
		}
		rest, err := readConn(conn, buf[n:])
		if n+rest < handshakeSize {
			closeAll(fds)
			return nil, fmt.Errorf("dial %q: handshake: short reply: %v", path, err)
		}
	}
	magic, abi, ring := decodeHandshake(buf)
	switch {
	case magic == magicNope || magic == magicOkay:
		if abi != ABIVersion {
			closeAll(fds)
			return nil, fmt.Errorf("dial %q: %w: publisher speaks ABI v%d, this is v%d", path, ErrVersion, abi, ABIVersion)
		}
		if err := compareIdentity("dial", path, ring, id); err != nil {
			closeAll(fds)
			return nil, err
		}
		if magic == magicNope {
			closeAll(fds)
			return nil, fmt.Errorf("dial %q: the publisher refused the handshake (closing)", path)
		}
	default:
		closeAll(fds)
		return nil, fmt.Errorf("dial %q: %w: not a Tachyon ring socket (reply %q)", path, ErrCorrupt, magic[:])
	}
	if len(fds) != 1 {
		closeAll(fds)
		return nil, fmt.Errorf("dial %q: %w: expected one descriptor, got %d", path, ErrCorrupt, len(fds))
	}
	got := fds[0]
	seals, err := unix.FcntlInt(uintptr(got), unix.F_GET_SEALS, 0)
	if err != nil || seals&sealedSeals != sealedSeals {
		_ = unix.Close(got)
		return nil, fmt.Errorf("dial %q: %w: descriptor seals %#x, want %#x (shrink, grow, seal)", path, ErrInsecure, seals, sealedSeals)
	}
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(got), unix.O_RDWR|unix.O_CLOEXEC, 0)
	_ = unix.Close(got)
	if err != nil {
		return nil, fmt.Errorf("dial %q: reopen the segment: %w", path, &os.PathError{Op: "open", Path: "/proc/self/fd", Err: err})
	}
	s, err := openFD("dial", path, fd, true, opts.ReadyTimeout, opts.AllowForeignOwner)
	if err != nil {
		return nil, err
	}
	return subscribe[T](s, id, opts)
}

// receivedFDs parses SCM_RIGHTS control messages.
func receivedFDs(oob []byte) ([]int, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("%w: control message: %v", ErrCorrupt, err)
	}
	var fds []int
	for i := range msgs {
		rights, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			continue
		}
		fds = append(fds, rights...)
	}
	return fds, nil
}
