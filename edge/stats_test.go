package edge

import (
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/wsedge/wsedge/internal/testkit"
)

// Stats' typed fields are the figures /metrics exports, one source each:
// after a real client's echo traffic both agree, and the gauge of open
// connections follows Stats().Connections down to 0.
func TestStatsAgreeWithMetrics(t *testing.T) {
	s := startServer(t, nil)
	c := dial(t, s, "/echo")
	for range 3 {
		if err := c.WriteMessage(websocket.TextMessage, []byte("hello")); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.ReadMessage(); err != nil {
			t.Fatal(err)
		}
	}
	testkit.Eventually(t, 5*time.Second, "3 echoes counted", func() bool { return s.Stats().MessagesOut == 3 })
	st := s.Stats()
	for _, f := range []struct {
		name string
		got  int64
	}{
		{"wsedge_connections", st.Connections},
		{"wsedge_connections_accepted_total", st.Accepted},
		{"wsedge_messages_received_total", st.MessagesIn},
		{"wsedge_messages_sent_total", st.MessagesOut},
		{"wsedge_bytes_received_total", st.BytesIn},
		{"wsedge_bytes_sent_total", st.BytesOut},
	} {
		if want := scrape(t, s, f.name, ""); float64(f.got) != want || f.got <= 0 {
			t.Errorf("Stats for %s = %d, /metrics %v", f.name, f.got, want)
		}
	}
	if st.Connections != 1 || st.MessagesIn != 3 || st.Accepted != 1 {
		t.Errorf("stats %+v, want 1 connection, 3 messages in, 1 accepted", st)
	}
	c.Close()
	testkit.Eventually(t, 5*time.Second, "the connection closed", func() bool { return s.Stats().Connections == 0 })
	if got := scrape(t, s, "wsedge_connections", ""); got != 0 {
		t.Errorf("wsedge_connections %v after the close, want 0", got)
	}
	// A nonblocking pool never queues: no series that is always 0.
	if got := scrape(t, s, "wsedge_pool_waiting", ""); got != -1 {
		t.Errorf("wsedge_pool_waiting exported (%v)", got)
	}
}
