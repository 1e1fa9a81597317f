package cluster

import (
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/wsedge/wsedge/frame"
	"github.com/wsedge/wsedge/internal/names"
)

// Any client of the NATS account can publish on the cluster's subjects
// (docs/cluster.md), so a message from the bus is checked before anything
// acts on it: it must be one a node could have sent on that subject.

// Reasons a bus message is dropped, the label of wsedge_bus_rejected_total.
const (
	rejectMalformed    = "malformed"     // not the wire format (docs/cluster.md), or bytes left over
	rejectWrongSubject = "wrong_subject" // an op not carried on this kind of subject, or no kind at all
	rejectNameMismatch = "name_mismatch" // the user id or room carried is not the subject's token
	rejectBadFrame     = "bad_frame"     // a relayed frame that is not exactly one final, unmasked text frame
	rejectTooLarge     = "too_large"     // text for clients over what a node ever relays
	rejectBadUTF8      = "bad_utf8"      // text for clients that is not valid UTF-8
)

var rejectReasons = []string{rejectMalformed, rejectWrongSubject, rejectNameMismatch, rejectBadFrame, rejectTooLarge, rejectBadUTF8}

// busSubjects are the subject prefixes a node reads other nodes' ops on.
type busSubjects struct {
	user, room, all string // "<p>.user.", "<p>.room.", "<p>.all"
}

// busMsg is one checked op from another node.
type busMsg struct {
	op   byte
	name string // the user id or room; "" for a broadcast
	rest []byte // opDeliver: the client message; opFrame: the frame
	node string // opClaim: the claiming node
	at   int64  // opClaim: its connection's connect time
}

// parseBusMessage checks data, received on subject, against the wire
// format and returns the op, or the reason to drop it. maxText bounds the
// text a node relays to clients (a message's payload).
func parseBusMessage(subj busSubjects, subject string, data []byte, maxText int64) (busMsg, string) {
	var m busMsg
	if len(data) == 0 {
		return m, rejectMalformed
	}
	m.op = data[0]
	var err error
	if m.op == opClaim || m.op == opEvict {
		m.name, m.node, m.at, err = parseClaim(data[1:])
		if err == nil && !names.Valid(m.node) {
			err = errBadBusMessage
		}
	} else {
		m.name, m.rest, err = readField(data[1:])
	}
	if err != nil {
		return m, rejectMalformed
	}

	// Each op on its kind of subject, naming the subject's own user or room.
	var token string
	switch {
	case strings.HasPrefix(subject, subj.user):
		token = subject[len(subj.user):]
		if m.op != opDeliver && m.op != opClaim && m.op != opPresence && m.op != opKick && m.op != opConns && m.op != opEvict {
			return m, rejectWrongSubject
		}
	case strings.HasPrefix(subject, subj.room):
		token = subject[len(subj.room):]
		if m.op != opFrame && m.op != opMembers {
			return m, rejectWrongSubject
		}
	case subject == subj.all:
		if m.op != opFrame {
			return m, rejectWrongSubject
		}
		if m.name != "" {
			return m, rejectNameMismatch
		}
	default:
		return m, rejectWrongSubject
	}
	if subject != subj.all {
		if !names.Valid(m.name) {
			return m, rejectMalformed
		}
		if len(token) != subjectTokenLen(m.name) || token != subjectToken(m.name) {
			return m, rejectNameMismatch
		}
	}

	switch m.op {
	case opPresence, opKick, opMembers, opConns:
		if len(m.rest) != 0 {
			return m, rejectMalformed
		}
	case opDeliver:
		if int64(len(m.rest)) > maxText {
			return m, rejectTooLarge
		}
		if !utf8.Valid(m.rest) {
			return m, rejectBadUTF8
		}
	case opFrame:
		if reason := checkTextFrame(m.rest, maxText); reason != "" {
			return m, reason
		}
	}
	return m, ""
}

// subjectTokenLen is len(subjectToken(name)), without building it.
func subjectTokenLen(name string) int { return (len(name)*8 + 5) / 6 }

// checkTextFrame accepts fr only when it is exactly one final, unmasked
// text frame without RSV bits, whose declared length is the bytes carried,
// at most maxText, and whose payload is valid UTF-8: what AppendFrame
// makes. Anything else would reach every client as a protocol violation, a
// close, or a header promising bytes that never come.
func checkTextFrame(fr []byte, maxText int64) string {
	// FIN, no RSV bit, opcode text: one frame, not the first of several.
	if len(fr) < 2 || fr[0] != 0x80|byte(ws.OpText) {
		return rejectBadFrame
	}
	// A client-side decoder refuses masked frames, checks the declared
	// length against the limit before buffering and validates UTF-8.
	var d frame.Decoder
	d.Init(frame.DecoderConfig{MaxMessage: maxText, Client: true})
	defer d.Release()
	msgs := 0
	err := d.Feed(fr, func(frame.Message) { msgs++ })
	var pe *frame.ProtocolError
	switch {
	case errors.As(err, &pe) && pe.Code == ws.StatusMessageTooBig:
		return rejectTooLarge
	case errors.As(err, &pe) && pe.Code == ws.StatusInvalidFramePayloadData:
		return rejectBadUTF8
	case err != nil:
		return rejectBadFrame
	}
	// A shorter payload leaves the decoder mid-frame; a longer one starts
	// another frame (a second message, or a partial header).
	if msgs != 1 || !d.AtBoundary() {
		return rejectBadFrame
	}
	return ""
}
