package bridge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Conn says how to reach NATS: what a production deployment needs besides
// the URLs (credentials, TLS).
type Conn struct {
	// URLs are the seed servers (any of them; the client learns the rest
	// of the cluster and fails over between them).
	URLs []string
	// Creds is a credentials file (user JWT and NKey seed), as `nsc`
	// writes it. User, password or token may also be given in a URL.
	Creds string
	// TLSCA verifies the servers' certificates; TLSCert and TLSKey are the
	// client certificate for mutual TLS.
	TLSCA, TLSCert, TLSKey string
	// Name is the connection name the servers show (`nats server report
	// connections`).
	Name string
}

// connect dials NATS, reconnecting forever after a connection was once made;
// a first connection that fails is an error naming the servers.
func (c Conn) connect(log *slog.Logger) (*nats.Conn, error) {
	if len(c.URLs) == 0 {
		c.URLs = []string{nats.DefaultURL}
	}
	opts := []nats.Option{
		nats.Name(c.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectBufSize(64 << 20),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("nats reconnected", "server", nc.ConnectedUrlRedacted()) }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			log.Warn("nats error", "err", err)
		}),
	}
	if c.Creds != "" {
		opts = append(opts, nats.UserCredentials(c.Creds))
	}
	if c.TLSCA != "" {
		opts = append(opts, nats.RootCAs(c.TLSCA))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return nil, errors.New("a client certificate needs both --tls-cert and --tls-key")
	}
	if c.TLSCert != "" {
		opts = append(opts, nats.ClientCert(c.TLSCert, c.TLSKey))
	}
	nc, err := nats.Connect(strings.Join(c.URLs, ","), opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS at %s: %w", strings.Join(c.URLs, ","), err)
	}
	return nc, nil
}

// Stream is the JetStream stream the bridge uses, and how to create it when
// it does not exist.
type Stream struct {
	Name string
	// Create the stream when it does not exist; false refuses to run.
	Create bool
	// Subjects of a created stream (default: the bridge's subject).
	Subjects  []string
	Replicas  int
	Retention string // limits, interest or workqueue
	Storage   string // file or memory
	MaxAge    time.Duration
	MaxBytes  int64
	// Duplicates is the window within which JetStream drops a message whose
	// Nats-Msg-Id it has stored (default 2 minutes).
	Duplicates time.Duration
}

func (s Stream) config(subject string) (jetstream.StreamConfig, error) {
	cfg := jetstream.StreamConfig{
		Name:       s.Name,
		Subjects:   s.Subjects,
		Replicas:   max(s.Replicas, 1),
		MaxAge:     s.MaxAge,
		MaxBytes:   s.MaxBytes,
		MaxMsgs:    -1,
		Duplicates: s.Duplicates,
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = -1
	}
	if len(cfg.Subjects) == 0 && subject != "" {
		cfg.Subjects = []string{subject}
	}
	switch s.Retention {
	case "", "limits":
		cfg.Retention = jetstream.LimitsPolicy
	case "interest":
		cfg.Retention = jetstream.InterestPolicy
	case "workqueue":
		cfg.Retention = jetstream.WorkQueuePolicy
	default:
		return cfg, fmt.Errorf("retention %q: want limits, interest or workqueue", s.Retention)
	}
	switch s.Storage {
	case "", "file":
		cfg.Storage = jetstream.FileStorage
	case "memory":
		cfg.Storage = jetstream.MemoryStorage
	default:
		return cfg, fmt.Errorf("storage %q: want file or memory", s.Storage)
	}
	return cfg, nil
}

// transient reports a JetStream API error that a cluster electing a leader,
// or a server starting, gives: worth asking again.
func transient(err error) bool {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		// 10005: no suitable peers for placement, while a cluster's nodes
		// (re)join.
		return apiErr.Code == 503 || apiErr.Code == 408 || apiErr.Code == 500 || apiErr.ErrorCode == 10005
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrJetStreamNotEnabled)
}

// retryAPI calls fn with a bounded context until it succeeds, fails for
// good, or ctx ends: a bridge started while its cluster elects a leader
// waits for it instead of failing.
func retryAPI(ctx context.Context, log *slog.Logger, what string, fn func(ctx context.Context) error) error {
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := fn(actx)
		cancel()
		if err == nil || !transient(err) || ctx.Err() != nil {
			return err
		}
		log.Warn("JetStream not answering; asking again", "what", what, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(min(time.Duration(attempt)*200*time.Millisecond, 2*time.Second)):
		}
	}
}

// ensureStream returns the stream, creating it when allowed, and checks that
// it captures subject (unless subject is empty: every subject).
func ensureStream(ctx context.Context, js jetstream.JetStream, s Stream, subject string, log *slog.Logger) (jetstream.Stream, error) {
	cfg, err := s.config(subject)
	if err != nil {
		return nil, err
	}
	var st jetstream.Stream
	err = retryAPI(ctx, log, "stream info", func(ctx context.Context) (err error) {
		st, err = js.Stream(ctx, s.Name)
		return err
	})
	switch {
	case errors.Is(err, jetstream.ErrStreamNotFound):
		if !s.Create {
			return nil, fmt.Errorf("stream %q does not exist, and stream creation is off (--create-stream=false)", s.Name)
		}
		if len(cfg.Subjects) == 0 {
			return nil, fmt.Errorf("stream %q does not exist; to create it, give --subject or --stream-subjects", s.Name)
		}
		err = retryAPI(ctx, log, "create stream", func(ctx context.Context) (err error) {
			st, err = js.CreateStream(ctx, cfg)
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				st, err = js.Stream(ctx, s.Name) // the other bridge created it first
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("create stream %q (subjects %v, %d replicas): %w", s.Name, cfg.Subjects, cfg.Replicas, err)
		}
		log.Info("created stream", "stream", s.Name, "subjects", strings.Join(cfg.Subjects, ","), "replicas", cfg.Replicas,
			"retention", cfg.Retention.String(), "storage", cfg.Storage.String(), "duplicates", st.CachedInfo().Config.Duplicates)
	case err != nil:
		return nil, fmt.Errorf("stream %q: %w", s.Name, err)
	default:
		c := st.CachedInfo().Config
		log.Info("using stream", "stream", s.Name, "subjects", strings.Join(c.Subjects, ","), "replicas", c.Replicas,
			"retention", c.Retention.String(), "duplicates", c.Duplicates)
		if s.Replicas > 0 && c.Replicas != s.Replicas {
			log.Warn("existing stream has another replica count; it is not changed", "stream", s.Name, "has", c.Replicas, "asked", s.Replicas)
		}
	}
	c := st.CachedInfo().Config
	if subject != "" && !anyMatch(c.Subjects, subject) {
		return nil, fmt.Errorf("stream %q captures %v, not subject %q: give --subject or another stream", s.Name, c.Subjects, subject)
	}
	return st, nil
}

// anyMatch reports whether subject (which may itself be a filter) lies
// within one of the stream's subject filters.
func anyMatch(filters []string, subject string) bool {
	for _, f := range filters {
		if subjectWithin(subject, f) {
			return true
		}
	}
	return false
}

// subjectWithin reports whether every subject matching sub also matches
// filter (NATS tokens: '*' one token, '>' the rest).
func subjectWithin(sub, filter string) bool {
	st, ft := strings.Split(sub, "."), strings.Split(filter, ".")
	for i, f := range ft {
		if f == ">" {
			return len(st) > i
		}
		if i >= len(st) {
			return false
		}
		if f != "*" && (f != st[i] || st[i] == "*" || st[i] == ">") {
			return false
		}
		if f == "*" && st[i] == ">" {
			return false
		}
	}
	return len(st) == len(ft)
}

// DefaultSubject is the subject of a message type when none is given:
// tachyon.PACKAGE.MESSAGE (the message's full name), or tachyon.id.N by
// type id when the name is not known.
func DefaultSubject(message string, typeID uint32) string {
	if message != "" {
		return "tachyon." + message
	}
	return fmt.Sprintf("tachyon.id.%d", typeID)
}
