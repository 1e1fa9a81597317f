package edge

import (
	"bytes"
	"testing"

	"github.com/gorilla/websocket"
)

func TestEchoTextAndBinary(t *testing.T) {
	s := startServer(t, nil)
	c := dial(t, s, "/echo")
	for _, tc := range []struct {
		typ  int
		data []byte
	}{
		{websocket.TextMessage, []byte("hello")},
		{websocket.BinaryMessage, []byte{0, 1, 2, 255}},
		{websocket.TextMessage, []byte{}},
		{websocket.BinaryMessage, bytes.Repeat([]byte("x"), 60000)},
	} {
		if err := c.WriteMessage(tc.typ, tc.data); err != nil {
			t.Fatal(err)
		}
		typ, got, err := c.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if typ != tc.typ || !bytes.Equal(got, tc.data) {
			t.Fatalf("echo of %d bytes type %d: got %d bytes type %d", len(tc.data), tc.typ, len(got), typ)
		}
	}
}
