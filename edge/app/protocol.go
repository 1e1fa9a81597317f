package app

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/wsedge/wsedge/internal/names"
)

// Client message types.
const (
	typeSend    = "send"
	typeJoin    = "join"
	typeLeave   = "leave"
	typePublish = "publish"
	typePing    = "ping"
	typeRefresh = "refresh"
)

// Error codes sent to clients in {"type":"error"} messages.
const (
	codeBadRequest   = "bad_request"
	codeNotConnected = "not_connected"
	codeTooManyRooms = "too_many_rooms"
	codeNotMember    = "not_member"
	codeRateLimited  = "rate_limited"
	codeDropped      = "dropped"
	codeUnavailable  = "unavailable" // cluster: the user's node could not be asked in time
	codeBadToken     = "bad_token"   // refresh: the token is invalid or for another user
	// codeForbidden (policy.go): the room policy refuses a join or publish.
)

// validName reports whether s is 1–128 printable ASCII bytes, the rule
// for user ids and room names (shared with the cluster bus).
func validName(s string) bool { return names.Valid(s) }

// clientMessage is one decoded client message. id and data are the raw
// JSON of those members (nil when absent); data is passed on unchanged.
type clientMessage struct {
	typ   string
	to    string
	room  string
	token string // refresh; join: a room token (room policy claims)
	id    json.RawMessage
	data  json.RawMessage
	since json.RawMessage // join only; read when history is on
}

// wireMessage is the shape of a client message; every member is kept raw so
// that a missing member, null and a wrong type can be told apart.
type wireMessage struct {
	Type json.RawMessage `json:"type"`
	To   json.RawMessage `json:"to"`
	Room json.RawMessage `json:"room"`
	ID   json.RawMessage `json:"id"`
	Data json.RawMessage `json:"data"`
	// Token is only read for refresh and join.
	Token json.RawMessage `json:"token"`
	// Since is only read for join, with history on (history.go).
	Since json.RawMessage `json:"since"`
}

// protoError is a client message refused with an error code; id is the
// message's id when one could be read.
type protoError struct {
	code, message string
	id            json.RawMessage
}

func badRequest(id json.RawMessage, msg string) *protoError {
	return &protoError{code: codeBadRequest, message: msg, id: id}
}

// parseClientMessage decodes and checks one text message.
func parseClientMessage(p []byte) (clientMessage, *protoError) {
	var m clientMessage
	if t := bytes.TrimLeft(p, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return m, badRequest(nil, "a message must be one JSON object")
	}
	var w wireMessage
	if err := json.Unmarshal(p, &w); err != nil {
		return m, badRequest(nil, "invalid JSON: "+err.Error())
	}
	if len(w.ID) > 0 && !isNull(w.ID) {
		if c := w.ID[0]; c != '"' && c != '-' && (c < '0' || c > '9') {
			return m, badRequest(nil, "id must be a string or a number")
		}
		m.id = w.ID
	}
	if !isString(w.Type) {
		return m, badRequest(m.id, `missing or non-string "type"`)
	}
	m.typ = unquote(w.Type)
	switch m.typ {
	case typeSend:
		if !isString(w.To) {
			return m, badRequest(m.id, `send needs "to", a user id`)
		}
		m.to = unquote(w.To)
		if !validName(m.to) {
			return m, badRequest(m.id, `"to" must be 1-128 printable ASCII characters`)
		}
		if len(w.Data) == 0 {
			return m, badRequest(m.id, `send needs "data"`)
		}
		m.data = w.Data
	case typeJoin, typeLeave, typePublish:
		if !isString(w.Room) {
			return m, badRequest(m.id, m.typ+` needs "room", a room name`)
		}
		m.room = unquote(w.Room)
		if !validName(m.room) {
			return m, badRequest(m.id, `"room" must be 1-128 printable ASCII characters`)
		}
		if m.typ == typeJoin {
			m.since = w.Since
		}
		if m.typ == typeJoin && len(w.Token) > 0 && !isNull(w.Token) {
			if !isString(w.Token) {
				return m, badRequest(m.id, `"token" must be a string, a room token (JWT)`)
			}
			m.token = unquote(w.Token)
		}
		if m.typ == typePublish {
			if len(w.Data) == 0 {
				return m, badRequest(m.id, `publish needs "data"`)
			}
			m.data = w.Data
		}
	case typeRefresh:
		if !isString(w.Token) {
			return m, badRequest(m.id, `refresh needs "token", a JWT`)
		}
		m.token = unquote(w.Token)
	case typePing:
	default:
		return m, badRequest(m.id, "unknown type "+strconv.Quote(m.typ))
	}
	return m, nil
}

func isNull(v json.RawMessage) bool   { return string(v) == "null" }
func isString(v json.RawMessage) bool { return len(v) > 0 && v[0] == '"' }

// unquote decodes a JSON string already validated by json.Unmarshal.
func unquote(v json.RawMessage) string {
	if len(v) >= 2 && bytes.IndexByte(v, '\\') < 0 {
		return string(v[1 : len(v)-1]) // no escapes: the bytes are the string
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		return ""
	}
	return s
}

// Outbound messages are built by appending bytes: data is copied as the
// client or backend sent it, never re-encoded.

// appendMessage appends {"type":"message","from":..,"room":..,"data":..};
// from and room are left out when empty.
func appendMessage(b []byte, from, room string, data []byte) []byte {
	return appendRoomMessage(b, from, room, 0, data)
}

// appendRoomMessage is appendMessage with the room's "offset" (history on;
// 0 leaves it out).
func appendRoomMessage(b []byte, from, room string, offset int64, data []byte) []byte {
	b = append(b, `{"type":"message"`...)
	if from != "" {
		b = append(b, `,"from":`...)
		b = appendString(b, from)
	}
	if room != "" {
		b = append(b, `,"room":`...)
		b = appendString(b, room)
	}
	if offset > 0 {
		b = append(b, `,"offset":`...)
		b = strconv.AppendInt(b, offset, 10)
	}
	b = append(b, `,"data":`...)
	b = append(b, data...)
	return append(b, '}')
}

func appendAck(b []byte, id []byte) []byte {
	b = append(b, `{"type":"ack","id":`...)
	b = append(b, id...)
	return append(b, '}')
}

func appendPong(b []byte, id []byte) []byte {
	if id == nil {
		return append(b, `{"type":"pong"}`...)
	}
	b = append(b, `{"type":"pong","id":`...)
	b = append(b, id...)
	return append(b, '}')
}

func appendError(b []byte, e *protoError) []byte {
	b = append(b, `{"type":"error"`...)
	if e.id != nil {
		b = append(b, `,"id":`...)
		b = append(b, e.id...)
	}
	b = append(b, `,"code":`...)
	b = appendString(b, e.code)
	b = append(b, `,"message":`...)
	b = appendString(b, e.message)
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// trimJSONSpace strips the whitespace JSON allows around a value.
func trimJSONSpace(b []byte) []byte { return bytes.Trim(b, " \t\r\n") }
