package frame

import (
	"errors"

	"github.com/gobwas/ws"
)

// DeflateRejection names the permessage-deflate rule that err, returned by
// d's Feed, broke, for the server's metrics: "rsv1" (RSV1 where RFC 7692
// forbids it, 1002), "corrupt" (a corrupt or truncated deflate stream,
// 1002), "too_big" (a compressed message past MaxMessage, 1009),
// "invalid_utf8" (compressed text that is not UTF-8, 1007), or "" when err
// has nothing to do with compression. Call it before Release or Init,
// which forget the failed message.
func (d *Decoder) DeflateRejection(err error) string {
	var pe *ProtocolError
	if !errors.As(err, &pe) {
		return ""
	}
	switch pe.Reason {
	case "RSV1 set without permessage-deflate", "RSV1 set on a control or continuation frame":
		return "rsv1"
	case "compressed message is truncated", "corrupt compressed message":
		return "corrupt"
	case "invalid UTF-8 in a compressed text message", "compressed text message ends inside a UTF-8 sequence":
		return "invalid_utf8"
	}
	// 1009 comes only from a data frame, whose first frame set zflags.
	if pe.Code == ws.StatusMessageTooBig && d.zflags&zCompressed != 0 {
		return "too_big"
	}
	return ""
}
