package cluster

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/wsedge/wsedge/frame"
	"github.com/wsedge/wsedge/internal/names"
)

var testSubjects = busSubjects{user: "wsedge.user.", room: "wsedge.room.", all: "wsedge.all"}

// The messages a node sends are accepted on their own subject, as sent.
func TestParseBusMessageAcceptsWhatNodesSend(t *testing.T) {
	fr := frame.AppendFrame(nil, ws.OpText, []byte(`{"type":"message","room":"a b","data":"é"}`))
	for _, c := range []struct {
		subject string
		data    []byte
		op      byte
		name    string
		rest    []byte
	}{
		{userSubject("bob"), deliverMsg("bob", []byte(`{"data":1}`)), opDeliver, "bob", []byte(`{"data":1}`)},
		{userSubject("bob"), nameMsg(opPresence, "bob"), opPresence, "bob", nil},
		{userSubject("bob"), nameMsg(opKick, "bob"), opKick, "bob", nil},
		{userSubject("a.b*>"), claimMsg("a.b*>", "node-1", 7), opClaim, "a.b*>", nil},
		{roomSubject("a b"), nameMsg(opMembers, "a b"), opMembers, "a b", nil},
		{roomSubject("a b"), frameMsg("a b", fr), opFrame, "a b", fr},
		{"wsedge.all", frameMsg("", fr), opFrame, "", fr},
		{"wsedge.all", frameMsg("", frame.AppendFrame(nil, ws.OpText, nil)), opFrame, "", frame.AppendFrame(nil, ws.OpText, nil)},
	} {
		m, reason := parseBusMessage(testSubjects, c.subject, c.data, 1<<10)
		if reason != "" || m.op != c.op || m.name != c.name || !bytes.Equal(m.rest, c.rest) {
			t.Errorf("%s %q: %+v %q", c.subject, c.data, m, reason)
		}
	}
	// A frame of exactly the limit passes; one byte more does not.
	at := frame.AppendFrame(nil, ws.OpText, []byte(strings.Repeat("x", 300)))
	if _, r := parseBusMessage(testSubjects, "wsedge.all", frameMsg("", at), 300); r != "" {
		t.Errorf("frame at the limit: %s", r)
	}
	if _, r := parseBusMessage(testSubjects, "wsedge.all", frameMsg("", at), 299); r != rejectTooLarge {
		t.Errorf("frame over the limit: %q", r)
	}
	if _, r := parseBusMessage(testSubjects, userSubject("u"), deliverMsg("u", []byte(strings.Repeat("x", 300))), 299); r != rejectTooLarge {
		t.Errorf("deliver over the limit: %q", r)
	}
}

// FuzzBusMessage checks the bus wire format's checker: it never panics, and
// what it accepts is an op of its subject's kind naming the subject's own
// user or room, and text for clients that is valid UTF-8 within the limit,
// a relayed frame being exactly one final unmasked text frame.
func FuzzBusMessage(f *testing.F) {
	fr := frame.AppendFrame(nil, ws.OpText, []byte(`"hi"`))
	for _, s := range []struct {
		subject string
		data    []byte
	}{
		{userSubject("bob"), deliverMsg("bob", []byte(`{"x":1}`))},
		{userSubject("bob"), claimMsg("bob", "n1", 42)},
		{userSubject("bob"), nameMsg(opKick, "bob")},
		{userSubject("bob"), nameMsg(opPresence, "alice")},
		{roomSubject("r"), frameMsg("r", fr)},
		{roomSubject("r"), nameMsg(opMembers, "r")},
		{roomSubject("r"), frameMsg("r", frame.AppendClose(nil, ws.StatusNormalClosure, ""))},
		{"wsedge.all", frameMsg("", fr)},
		{"wsedge.all", frameMsg("", []byte{0x81, 127, 0x40, 0, 0, 0, 0, 0, 0, 0})},
		{"wsedge.all", frameMsg("", frame.AppendFrame(nil, ws.OpText, []byte("\xe9")))},
		{"wsedge.node", []byte("+n1")},
	} {
		f.Add(s.subject, s.data)
	}
	const maxText = 256
	f.Fuzz(func(t *testing.T, subject string, data []byte) {
		m, reason := parseBusMessage(testSubjects, subject, data, maxText)
		if reason != "" {
			return
		}
		var token string
		switch {
		case strings.HasPrefix(subject, testSubjects.user):
			token = subject[len(testSubjects.user):]
			if !bytes.ContainsRune([]byte{opDeliver, opClaim, opPresence, opKick}, rune(m.op)) {
				t.Fatalf("op %q accepted on user subject %q", m.op, subject)
			}
		case strings.HasPrefix(subject, testSubjects.room):
			token = subject[len(testSubjects.room):]
			if m.op != opFrame && m.op != opMembers {
				t.Fatalf("op %q accepted on room subject %q", m.op, subject)
			}
		case subject == testSubjects.all:
			if m.op != opFrame || m.name != "" {
				t.Fatalf("op %q name %q accepted on the broadcast subject", m.op, m.name)
			}
		default:
			t.Fatalf("accepted on subject %q", subject)
		}
		if subject != testSubjects.all && (token != subjectToken(m.name) || !names.Valid(m.name)) {
			t.Fatalf("name %q accepted on subject %q", m.name, subject)
		}
		switch m.op {
		case opDeliver:
			if len(m.rest) > maxText || !utf8.Valid(m.rest) {
				t.Fatalf("deliver payload %q accepted", m.rest)
			}
		case opClaim:
			if !names.Valid(m.node) {
				t.Fatalf("claim from node %q accepted", m.node)
			}
		case opFrame:
			// gobwas/ws as the independent reader of the header.
			r := bytes.NewReader(m.rest)
			h, err := ws.ReadHeader(r)
			if err != nil || !h.Fin || h.OpCode != ws.OpText || h.Rsv != 0 || h.Masked ||
				h.Length != int64(r.Len()) || h.Length > maxText || !utf8.Valid(m.rest[len(m.rest)-r.Len():]) {
				t.Fatalf("frame %x accepted: %+v %v", m.rest, h, err)
			}
		}
	})
}
