// Command tachyon-bridge carries a ring's messages over NATS JetStream:
// `out` publishes a ring's messages to a stream, `in` feeds a stream's
// messages into a ring on another host, as unchanged bytes with their
// identity. It moves bytes and links no compiler. The semantics are in
// docs/BRIDGE.md.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tachyon-io/tachyon/internal/bridge"
	"github.com/tachyon-io/tachyon/runtime/ring"
)

const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usageText = `tachyon-bridge carries a ring's messages over NATS JetStream (docs/BRIDGE.md).

Usage:
  tachyon-bridge out --ring NAME --stream S [--nats URL] [--subject SUBJ] [flags]
      publish the ring's messages to JetStream (a named ring subscriber)
  tachyon-bridge in --stream S --consumer NAME --ring NAME [--nats URL] [flags]
      feed the stream's messages into a ring this bridge creates

Run 'tachyon-bridge out --help' or 'tachyon-bridge in --help' for the flags.
`

// listFlag is a flag that may be repeated or given comma-separated.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// common are the flags of both directions.
type common struct {
	conn     bridge.Conn
	urls     listFlag
	subjects listFlag
	stream   bridge.Stream
	subject  string
	layout   string
	message  string
	stats    time.Duration
	quiet    bool
}

func (c *common) register(fs *flag.FlagSet) {
	fs.Var(&c.urls, "nats", "NATS server `URL`s, repeated or comma-separated (default nats://127.0.0.1:4222); user:password@ or token@ may be given in a URL")
	fs.StringVar(&c.conn.Creds, "creds", "", "NATS credentials `file` (user JWT and NKey seed)")
	fs.StringVar(&c.conn.TLSCA, "tls-ca", "", "CA certificate `file` to verify the servers")
	fs.StringVar(&c.conn.TLSCert, "tls-cert", "", "client certificate `file` (mutual TLS; with --tls-key)")
	fs.StringVar(&c.conn.TLSKey, "tls-key", "", "client key `file`")
	fs.StringVar(&c.conn.Name, "connection-name", "", "connection name shown by the servers")
	fs.StringVar(&c.stream.Name, "stream", "", "JetStream stream (required)")
	fs.BoolVar(&c.stream.Create, "create-stream", true, "create the stream when it does not exist; false refuses to run without it")
	fs.Var(&c.subjects, "stream-subjects", "`subjects` of a created stream (default: the bridge's subject)")
	fs.IntVar(&c.stream.Replicas, "replicas", 1, "replicas of a created stream (R3 for a three-node cluster)")
	fs.StringVar(&c.stream.Retention, "retention", "limits", "retention of a created stream: limits, interest or workqueue")
	fs.StringVar(&c.stream.Storage, "storage", "file", "storage of a created stream: file or memory")
	fs.DurationVar(&c.stream.MaxAge, "max-age", 0, "max age of a created stream's messages (0: unlimited)")
	fs.Int64Var(&c.stream.MaxBytes, "max-bytes", 0, "max bytes of a created stream (0: unlimited)")
	fs.DurationVar(&c.stream.Duplicates, "dedup-window", 2*time.Minute, "duplicate window of a created stream (Nats-Msg-Id)")
	fs.StringVar(&c.subject, "subject", "", "subject (default tachyon.PACKAGE.MESSAGE, or tachyon.id.TYPEID without a message name)")
	fs.StringVar(&c.layout, "layout", "", "layout `file` (tachyon-gen layout --json) naming the message types")
	fs.StringVar(&c.message, "message", "", "message `name` (package.Message): from --layout, or a label for the headers")
	fs.DurationVar(&c.stats, "stats", 0, "print a stats line every `interval` (0: none)")
	fs.BoolVar(&c.quiet, "quiet", false, "log warnings and errors only")
}

func (c *common) finish() {
	c.conn.URLs = c.urls
	c.stream.Subjects = c.subjects
}

// layoutMessage resolves --message in --layout, or nil without --layout.
func (c *common) layoutMessage() (*bridge.Message, []bridge.Message, error) {
	if c.layout == "" {
		return nil, nil, nil
	}
	msgs, err := bridge.LoadLayout(c.layout)
	if err != nil {
		return nil, nil, err
	}
	if c.message == "" {
		return nil, msgs, nil
	}
	m, err := bridge.FindMessage(msgs, c.message, c.layout)
	if err != nil {
		return nil, nil, err
	}
	return &m, msgs, nil
}

func newFlags(name string, stderr io.Writer, help string) *flag.FlagSet {
	fs := flag.NewFlagSet("tachyon-bridge "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "%s\n\nFlags:\n", help)
		fs.PrintDefaults()
	}
	return fs
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usageText)
		return exitUsage
	}
	switch args[0] {
	case "out":
		return runOut(ctx, args[1:], stdout, stderr)
	case "in":
		return runIn(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usageText)
		return exitOK
	}
	fmt.Fprintf(stderr, "tachyon-bridge: unknown command %q\n\n%s", args[0], usageText)
	return exitUsage
}

func parse(fs *flag.FlagSet, args []string, stderr io.Writer) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected arguments %q\n", fs.Name(), fs.Args())
		return exitUsage, false
	}
	return 0, true
}

func logger(stderr io.Writer, role string, quiet bool) *slog.Logger {
	level := slog.LevelInfo
	if quiet {
		level = slog.LevelWarn
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})).With("bridge", role)
}

func summary(stdout, stderr io.Writer, name string, s any, err error) int {
	b, _ := json.Marshal(s)
	fmt.Fprintln(stdout, string(b))
	if err != nil {
		fmt.Fprintf(stderr, "tachyon-bridge %s: %v\n", name, err)
		return exitError
	}
	return exitOK
}

func runOut(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("out", stderr, `Usage: tachyon-bridge out --ring NAME --stream S [--nats URL] [flags]

Attaches to the ring as a named subscriber (critical by default: the ring
waits for the bridge; lossy with --max-lag) and publishes every message's
bytes to JetStream, with headers carrying its identity and ring sequence and
a Nats-Msg-Id that makes a retry or a restart a duplicate JetStream drops.
The slots are released only once JetStream acknowledged them. Prints a JSON
summary on exit (SIGINT/SIGTERM, or the ring's close with --exit-on-close).`)
	var c common
	c.register(fs)
	var cfg bridge.OutConfig
	fs.StringVar(&cfg.Ring, "ring", "", "ring to read (required)")
	fs.StringVar(&cfg.Name, "name", "", "ring subscriber name (default tachyon-bridge-STREAM): a restart resumes its position")
	fs.IntVar(&cfg.MaxLag, "max-lag", 0, "0: critical subscriber (the ring waits); N: lossy, its drops counted")
	fs.IntVar(&cfg.Pack, "pack", 1, "ring messages per NATS message (K consecutive slots, bytes unchanged)")
	fs.IntVar(&cfg.Window, "window", 4096, "ring messages in flight at most (held until acknowledged; at most half the ring)")
	fs.DurationVar(&cfg.AckTimeout, "ack-timeout", 5*time.Second, "wait this long for an acknowledgement before publishing again")
	fs.BoolVar(&cfg.ExitOnClose, "exit-on-close", false, "exit once the ring's publisher closed it and everything is acknowledged")
	if code, ok := parse(fs, args, stderr); !ok {
		return code
	}
	c.finish()
	if cfg.Ring == "" || c.stream.Name == "" {
		fmt.Fprintln(stderr, "tachyon-bridge out: --ring and --stream are required")
		return exitUsage
	}
	cfg.Stream, cfg.Conn, cfg.Subject, cfg.Stats, cfg.Message = c.stream, c.conn, c.subject, c.stats, c.message
	cfg.Conn.Name = cmp.Or(cfg.Conn.Name, "tachyon-bridge out "+cfg.Ring)
	m, msgs, err := c.layoutMessage()
	if err != nil {
		fmt.Fprintln(stderr, "tachyon-bridge out:", err)
		return exitError
	}
	if m != nil {
		cfg.Identity, cfg.Message = &m.Identity, m.Name
	}
	cfg.Layout = msgs // --layout alone: the ring's message named by its fingerprint
	s, err := bridge.RunOut(ctx, cfg, logger(stderr, "out", c.quiet))
	return summary(stdout, stderr, "out", s, err)
}

func runIn(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := newFlags("in", stderr, `Usage: tachyon-bridge in --stream S --consumer NAME --ring NAME [--nats URL] [flags]

Consumes the stream with a durable consumer (ack policy all) and publishes
its messages into a ring it creates, acknowledging only what is committed.
Messages whose fingerprint, type id, size or alignment differ from the
ring's are refused (terminated, or with --on-mismatch stop left
unacknowledged); duplicates are dropped by ring sequence, so the ring sees
every sequence once and in order. The ring's identity comes from --layout
with --message, from --fingerprint/--type-id/--size/--align, or else from
the first message. Prints a JSON summary on exit.`)
	var c common
	c.register(fs)
	var cfg bridge.InConfig
	var policy, fp string
	var typeID uint
	var size, align int
	fs.StringVar(&cfg.Ring, "ring", "", "ring to create and feed (required)")
	fs.StringVar(&cfg.Consumer, "consumer", "", "durable consumer name (required)")
	fs.StringVar(&cfg.SourceRing, "source-ring", "", "accept messages from this source ring only (default: the first seen)")
	fs.IntVar(&cfg.Capacity, "capacity", 16384, "ring capacity, a power of two")
	fs.IntVar(&cfg.MaxSubscribers, "max-subscribers", ring.DefaultMaxSubscribers, "ring subscriber table size")
	fs.StringVar(&policy, "policy", "block", "ring policy: block (a full ring holds JetStream back) or drop_oldest")
	fs.DurationVar(&cfg.LivenessTimeout, "liveness-timeout", ring.DefaultLivenessTimeout, "evict a live subscriber that makes no progress this long")
	fs.IntVar(&cfg.WaitSubscribers, "wait-subscribers", 0, "consume only once this many subscribers are registered")
	fs.StringVar(&cfg.State, "state", "", "state `file` (default $TMPDIR/tachyon-bridge-in-RING.json)")
	fs.StringVar(&cfg.OnMismatch, "on-mismatch", "term", "a message of another identity: term (terminate it, go on) or stop (leave it, exit 1)")
	fs.BoolVar(&cfg.ExitOnClose, "exit-on-close", false, "exit, closing the ring, when the source ring's end arrives")
	fs.IntVar(&cfg.Fetch, "fetch", 1024, "messages pulled ahead")
	fs.IntVar(&cfg.MaxAckPending, "max-ack-pending", 65536, "consumer max_ack_pending")
	fs.DurationVar(&cfg.AckWait, "ack-wait", 30*time.Second, "consumer ack_wait")
	fs.StringVar(&fp, "fingerprint", "", "ring message fingerprint (0x...; with --type-id, --size, --align)")
	fs.UintVar(&typeID, "type-id", 0, "ring message type id")
	fs.IntVar(&size, "size", 0, "ring message size in bytes")
	fs.IntVar(&align, "align", 0, "ring message alignment")
	if code, ok := parse(fs, args, stderr); !ok {
		return code
	}
	c.finish()
	if cfg.Ring == "" || c.stream.Name == "" || cfg.Consumer == "" {
		fmt.Fprintln(stderr, "tachyon-bridge in: --ring, --stream and --consumer are required")
		return exitUsage
	}
	switch policy {
	case "block":
		cfg.Policy = ring.Block
	case "drop_oldest":
		cfg.Policy = ring.DropOldest
	default:
		fmt.Fprintf(stderr, "tachyon-bridge in: --policy %q: want block or drop_oldest\n", policy)
		return exitUsage
	}
	cfg.Stream, cfg.Conn, cfg.Subject, cfg.Stats, cfg.Message = c.stream, c.conn, c.subject, c.stats, c.message
	m, _, err := c.layoutMessage()
	if err != nil {
		fmt.Fprintln(stderr, "tachyon-bridge in:", err)
		return exitError
	}
	if m != nil {
		cfg.Identity, cfg.Message = &m.Identity, m.Name
	}
	if fp != "" || typeID != 0 || size != 0 || align != 0 {
		v, err := strconv.ParseUint(strings.TrimPrefix(fp, "0x"), 16, 64)
		if err != nil || fp == "" || size <= 0 || align <= 0 {
			fmt.Fprintln(stderr, "tachyon-bridge in: an explicit identity needs --fingerprint 0x..., --type-id, --size and --align")
			return exitUsage
		}
		id := ring.Identity{Fingerprint: v, TypeID: uint32(typeID), Size: size, Align: align}
		if cfg.Identity != nil {
			if err := cfg.Identity.Compare("--layout message vs the identity flags for", cfg.Ring, id); err != nil {
				fmt.Fprintln(stderr, "tachyon-bridge in:", err)
				return exitUsage
			}
		}
		cfg.Identity = &id
	}
	if c.layout != "" && m == nil {
		fmt.Fprintln(stderr, "tachyon-bridge in: --layout needs --message NAME")
		return exitUsage
	}
	s, err := bridge.RunIn(ctx, cfg, logger(stderr, "in", c.quiet))
	return summary(stdout, stderr, "in", s, err)
}
