package cluster

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Room history in a cluster lives in one JetStream stream (docs/cluster.md,
// "Room history"): subject <prefix>.hist.<room token>, one stored message
// per room message, its stream sequence being the room offset everywhere.

// HistoryConfig is the stream's limits and placement (the -history-* flags).
type HistoryConfig struct {
	Size     int           // MaxMsgsPerSubject
	TTL      time.Duration // MaxAge
	MaxBytes int64         // MaxBytes of the whole stream
	Storage  string        // "memory" or "file"
	Replicas int
}

// HistMsg is one stored room message: the stream sequence, the sequence of
// the room's previous message as its publisher knew it (see Publish), and
// the message as clients receive it, without its offset.
type HistMsg struct {
	Room    string
	Seq     uint64
	Prev    uint64
	Payload []byte
}

// ErrHistoryDown: JetStream did not answer; nothing was recorded.
var ErrHistoryDown = errors.New("room history (JetStream) unavailable")

// ErrHistoryUnsure: JetStream did not answer in time; the message may have
// been recorded (and is then delivered).
var ErrHistoryUnsure = errors.New("no answer in time, the message may have been recorded")

// hdrPrev carries HistMsg.Prev.
const hdrPrev = "Wsedge-Prev"

// History is the node's link to the history stream.
type History struct {
	b       *Bus
	js      jetstream.JetStream
	cfg     HistoryConfig
	name    string // stream name
	prefix  string // subject prefix, "<prefix>.hist."
	deliver func(HistMsg)

	mu     sync.Mutex
	stream jetstream.Stream // nil until the stream is set up
	cc     jetstream.ConsumeContext
	epoch  atomic.Value // string: the stream's creation time
	down   atomic.Bool
	ready  chan struct{}
	once   sync.Once // closes ready
}

// StartHistory sets the stream up (creating or updating it) and consumes it
// from its current end, handing every new message to deliver, in stream
// order, on one goroutine. With JetStream unreachable it keeps trying in
// the background; start is the stream's last sequence when consuming began.
func (b *Bus) StartHistory(cfg HistoryConfig, deliver func(HistMsg)) (*History, error) {
	if cfg.Storage != "memory" && cfg.Storage != "file" {
		return nil, fmt.Errorf("cluster: history storage %q: want memory or file", cfg.Storage)
	}
	js, err := jetstream.New(b.nc)
	if err != nil {
		return nil, err
	}
	h := &History{b: b, js: js, cfg: cfg, deliver: deliver, ready: make(chan struct{}),
		name:   strings.ReplaceAll(b.cfg.Prefix, ".", "_") + "_history",
		prefix: b.cfg.Prefix + ".hist."}
	h.epoch.Store("")
	h.down.Store(true)
	b.wg.Add(1)
	go h.run()
	return h, nil
}

// Ready is closed once the stream is set up and consumed.
func (h *History) Ready() <-chan struct{} { return h.ready }

// Err is non-nil while JetStream does not answer (/readyz degraded).
func (h *History) Err() error {
	if h.down.Load() || !h.b.nc.IsConnected() {
		return ErrHistoryDown
	}
	return nil
}

// Epoch is the stream's creation time: a stream deleted and made again is
// another history.
func (h *History) Epoch() string { return h.epoch.Load().(string) }

func (h *History) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), h.b.cfg.Timeout)
}

// run sets the stream up until it works, then checks it every heartbeat
// (readiness, epoch) until the bus closes.
func (h *History) run() {
	defer h.b.wg.Done()
	t := time.NewTicker(h.b.cfg.Heartbeat)
	defer t.Stop()
	for {
		if h.cc == nil {
			if err := h.setup(); err != nil {
				h.down.Store(true)
				h.b.logError.Do(func() { h.b.log.Warn("cluster: room history stream not ready", "stream", h.name, "err", err) })
			}
		} else {
			h.probe()
		}
		select {
		case <-h.b.stop:
			if h.cc != nil {
				h.cc.Stop()
			}
			return
		case <-t.C:
		}
	}
}

func (h *History) setup() error {
	ctx, cancel := h.ctx()
	defer cancel()
	storage := jetstream.MemoryStorage
	if h.cfg.Storage == "file" {
		storage = jetstream.FileStorage
	}
	s, err := h.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              h.name,
		Subjects:          []string{h.prefix + ">"},
		MaxMsgsPerSubject: int64(h.cfg.Size),
		MaxAge:            h.cfg.TTL,
		MaxBytes:          h.cfg.MaxBytes,
		Storage:           storage,
		Replicas:          h.cfg.Replicas,
		Discard:           jetstream.DiscardOld,
		AllowDirect:       true, // recovery reads from any replica
	})
	if err != nil {
		return err
	}
	info := s.CachedInfo()
	c, err := h.js.OrderedConsumer(ctx, h.name, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{h.prefix + ">"},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    info.State.LastSeq + 1,
	})
	if err != nil {
		return err
	}
	h.mu.Lock()
	h.stream = s
	h.mu.Unlock()
	h.epoch.Store(epochOf(info))
	// The app learns the start before the first message: what it has not
	// seen is older than start.
	h.deliver(HistMsg{Seq: info.State.LastSeq})
	cc, err := c.Consume(h.onMsg, jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		h.b.logError.Do(func() { h.b.log.Warn("cluster: room history consumer", "err", err) })
	}))
	if err != nil {
		return err
	}
	h.cc = cc
	h.down.Store(false)
	h.once.Do(func() { close(h.ready) })
	return nil
}

// probe asks for the stream's info: readiness and the epoch.
func (h *History) probe() {
	ctx, cancel := h.ctx()
	defer cancel()
	info, err := h.streamInfo(ctx)
	h.down.Store(err != nil)
	if err == nil {
		h.epoch.Store(epochOf(info))
	}
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		// Deleted, or a memory stream lost with its server: make it again
		// (another epoch) and consume it from its start.
		h.b.log.Warn("cluster: room history stream gone, making it again", "stream", h.name)
		h.cc.Stop()
		h.cc = nil
	}
}

func epochOf(info *jetstream.StreamInfo) string {
	return strconv.FormatInt(info.Created.UnixNano(), 36)
}

func (h *History) streamInfo(ctx context.Context) (*jetstream.StreamInfo, error) {
	h.mu.Lock()
	s := h.stream
	h.mu.Unlock()
	if s == nil {
		return nil, ErrHistoryDown
	}
	return s.Info(ctx)
}

// onMsg hands one stream message to the app, in stream order.
func (h *History) onMsg(m jetstream.Msg) {
	defer func() {
		if v := recover(); v != nil {
			h.b.m.errors.WithLabelValues("panic").Inc()
			h.b.logError.Do(func() { h.b.log.Error("cluster: panic handling a history message", "subject", m.Subject(), "panic", v) })
		}
	}()
	md, err := m.Metadata()
	if err != nil {
		return
	}
	room, ok := h.room(m.Subject())
	if !ok {
		h.b.reject(m.Subject(), "bad_subject")
		return
	}
	if reason := h.checkStored(m.Data()); reason != "" {
		h.b.reject(m.Subject(), reason)
		return
	}
	prev, _ := strconv.ParseUint(m.Headers().Get(hdrPrev), 10, 64)
	h.deliver(HistMsg{Room: room, Seq: md.Sequence.Stream, Prev: prev, Payload: m.Data()})
}

// checkStored says why a stored message must not reach clients, or "".
// Anyone with publish rights on the history subjects can store one (the
// subject prefix is no security boundary, docs/cluster.md), so it must be
// what a node records: one JSON room message, valid UTF-8 (clients fail
// anything else with 1007), within what a node ever relays.
func (h *History) checkStored(data []byte) string {
	switch {
	case int64(len(data)) > h.b.maxText:
		return rejectTooLarge
	case !utf8.Valid(data):
		return rejectBadUTF8
	case !bytes.HasPrefix(data, []byte(`{"type":"message"`)) || !json.Valid(data):
		return rejectMalformed
	}
	return ""
}

func (h *History) room(subject string) (string, bool) {
	tok, ok := strings.CutPrefix(subject, h.prefix)
	if !ok {
		return "", false
	}
	name, err := parseSubjectToken(tok)
	return name, err == nil
}

// Publish records a room message and returns its stream sequence; prev is
// the room's previous message as this node knows it, kept so that recovery
// can tell a gap (docs/cluster.md). ErrHistoryDown: not recorded, unless
// the error is also ErrHistoryUnsure (sent, not answered in time).
func (h *History) Publish(room string, payload []byte, prev uint64) (uint64, error) {
	if !h.b.nc.IsConnected() {
		// Refused, not buffered for the reconnect: the publisher is told
		// unavailable, so the message must not be recorded later.
		h.down.Store(true)
		return 0, ErrHistoryDown
	}
	ctx, cancel := h.ctx()
	defer cancel()
	m := nats.NewMsg(h.prefix + subjectToken(room))
	m.Data = payload
	m.Header.Set(hdrPrev, strconv.FormatUint(prev, 10))
	ack, err := h.js.PublishMsg(ctx, m)
	if err != nil {
		h.down.Store(true)
		return 0, fmt.Errorf("%w: %w: %v", ErrHistoryDown, ErrHistoryUnsure, err)
	}
	h.down.Store(false)
	return ack.Sequence, nil
}

// Next is the room's first kept message with a sequence >= seq; ok false
// when there is none.
func (h *History) Next(room string, seq uint64) (m HistMsg, ok bool, err error) {
	h.mu.Lock()
	s := h.stream
	h.mu.Unlock()
	if s == nil || !h.b.nc.IsConnected() {
		return m, false, ErrHistoryDown
	}
	ctx, cancel := h.ctx()
	defer cancel()
	raw, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(h.prefix+subjectToken(room)))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return m, false, nil
	}
	if err != nil {
		return m, false, fmt.Errorf("%w: %v", ErrHistoryDown, err)
	}
	prev, _ := strconv.ParseUint(raw.Header.Get(hdrPrev), 10, 64)
	payload := raw.Data
	if reason := h.checkStored(payload); reason != "" {
		h.b.reject(raw.Subject, reason)
		payload = nil // kept in sequence, never sent: the app drops it
	}
	return HistMsg{Room: room, Seq: raw.Sequence, Prev: prev, Payload: payload}, true, nil
}

// parseSubjectToken is subjectToken's inverse.
func parseSubjectToken(tok string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	return string(b), err
}
