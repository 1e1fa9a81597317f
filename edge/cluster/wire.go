package cluster

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
)

// Bus message operations: the first byte of every message on a user, room
// or broadcast subject (docs/cluster.md).
const (
	opDeliver  byte = 'm' // user subject: write payload (a client message, JSON) to the user
	opClaim    byte = 'c' // user subject: the user connected on node N at time T
	opPresence byte = 'q' // user subject: the user's presence (answered in JSON)
	opMembers  byte = 'r' // room subject: this node's members (answered in JSON)
	opKick     byte = 'k' // user subject: close the user with 4001
	opFrame    byte = 'f' // room or broadcast subject: write this WebSocket frame to the members
)

var errBadBusMessage = errors.New("malformed bus message")

// subjectToken encodes a user id or room name as one NATS subject token.
// Names may hold spaces, dots and wildcards, which a token may not; base64url
// (no padding) maps every name to [A-Za-z0-9_-], one to one.
func subjectToken(name string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(name))
}

// Bus messages are an op byte, then length-prefixed (uvarint) fields, then
// the rest, which is the payload, copied as is.

func appendField(b []byte, f string) []byte {
	b = binary.AppendUvarint(b, uint64(len(f)))
	return append(b, f...)
}

// readField splits one length-prefixed field off p.
func readField(p []byte) (field string, rest []byte, err error) {
	n, k := binary.Uvarint(p)
	if k <= 0 || n > uint64(len(p)-k) {
		return "", nil, errBadBusMessage
	}
	return string(p[k : k+int(n)]), p[k+int(n):], nil
}

// deliverMsg: opDeliver, the user id, the client message.
func deliverMsg(id string, payload []byte) []byte {
	b := make([]byte, 0, 1+2+len(id)+len(payload))
	b = appendField(append(b, opDeliver), id)
	return append(b, payload...)
}

// nameMsg: op and one name (opPresence, opKick).
func nameMsg(op byte, name string) []byte {
	return appendField(append(make([]byte, 0, 2+len(name)), op), name)
}

// claimMsg: opClaim, the user id, the claiming node, its connection's
// connect time (unix nanoseconds).
func claimMsg(id, node string, at int64) []byte { return nodeAtMsg(opClaim, id, node, at) }

// nodeAtMsg: op (opClaim, opEvict), the user id, a node, a connection's
// connect time (unix nanoseconds).
func nodeAtMsg(op byte, id, node string, at int64) []byte {
	b := appendField(append(make([]byte, 0, 16+len(id)+len(node)), op), id)
	b = appendField(b, node)
	return binary.AppendVarint(b, at)
}

func parseClaim(p []byte) (id, node string, at int64, err error) {
	if id, p, err = readField(p); err != nil {
		return
	}
	if node, p, err = readField(p); err != nil {
		return
	}
	at, k := binary.Varint(p)
	if k <= 0 || k != len(p) {
		return "", "", 0, errBadBusMessage
	}
	return id, node, at, nil
}

// frameMsg: opFrame, the room (empty for a broadcast), a WebSocket frame
// encoded once by the publishing node.
func frameMsg(room string, fr []byte) []byte {
	b := make([]byte, 0, 2+len(room)+len(fr))
	b = appendField(append(b, opFrame), room)
	return append(b, fr...)
}
