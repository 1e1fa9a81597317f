package frame

import (
	"errors"
	"strconv"

	"github.com/gobwas/ws"
)

// ProtocolError is a WebSocket protocol failure found in a peer's frames.
// Code is the RFC 6455 §7.4.1 status code to close the connection with
// (1002, 1007 or 1009); Reason is a short English description that fits
// in a close frame.
type ProtocolError struct {
	Code   ws.StatusCode
	Reason string
}

func (e *ProtocolError) Error() string {
	return "frame: " + e.Reason + " (close " + strconv.Itoa(int(e.Code)) + ")"
}

// CloseFrame returns the server close frame that answers e.
func (e *ProtocolError) CloseFrame() []byte {
	return AppendClose(nil, e.Code, e.Reason)
}

// ErrDecoderFailed is returned by Feed on a decoder that already returned
// an error: its state is gone, and the connection must be closed.
var ErrDecoderFailed = errors.New("frame: decoder fed after a protocol error")

func protocolError(reason string) *ProtocolError {
	return &ProtocolError{Code: ws.StatusProtocolError, Reason: reason}
}

func invalidUTF8(reason string) *ProtocolError {
	return &ProtocolError{Code: ws.StatusInvalidFramePayloadData, Reason: reason}
}

func tooBig() *ProtocolError {
	return &ProtocolError{Code: ws.StatusMessageTooBig, Reason: "message too big"}
}
