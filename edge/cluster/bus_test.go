package cluster

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/nats-io/nats.go"

	"github.com/wsedge/wsedge/frame"
	"github.com/wsedge/wsedge/internal/testkit"
)

// Forged messages of every kind are dropped, counted by reason and never
// reach the node's application; a well-formed message still does.
func TestClusterRejectsForgedBusMessages(t *testing.T) {
	ns := startNATS(t)
	local := newFakeLocal()
	b := startBus(t, ns, local, nil)
	local.addUser(b, "bob")
	local.addUser(b, "alice")
	local.join(b, "lobby")
	if err := b.Flush(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	raw := rawNATS(t, ns)

	text := frame.AppendFrame(nil, ws.OpText, []byte(`{"type":"message","data":"forged"}`))
	fragment := append([]byte{byte(ws.OpText)}, text[1:]...) // FIN cleared
	masked := frame.AppendClientFrame(nil, ws.OpText, []byte(`"m"`), [4]byte{1, 2, 3, 4})
	huge := []byte{0x81, 127, 0x40, 0, 0, 0, 0, 0, 0, 0, '"'} // declares 2^62 bytes
	badUTF8 := frame.AppendFrame(nil, ws.OpText, []byte("\"caf\xe9\""))
	forged := []struct {
		subject string
		data    []byte
		reason  string
	}{
		{userSubject("bob"), frameMsg("bob", text), rejectWrongSubject},
		{roomSubject("lobby"), deliverMsg("lobby", []byte(`"x"`)), rejectWrongSubject},
		{"wsedge.all", deliverMsg("", []byte(`"x"`)), rejectWrongSubject},
		{userSubject("bob"), deliverMsg("alice", []byte(`"x"`)), rejectNameMismatch},
		{roomSubject("lobby"), frameMsg("other", text), rejectNameMismatch},
		{"wsedge.all", frameMsg("lobby", text), rejectNameMismatch},
		{userSubject("bob"), claimMsg("alice", "node9", time.Now().UnixNano()+1e12), rejectNameMismatch},
		{roomSubject("lobby"), frameMsg("lobby", frame.AppendClose(nil, ws.StatusNormalClosure, "forged")), rejectBadFrame},
		{"wsedge.all", frameMsg("", frame.AppendFrame(nil, ws.OpPing, nil)), rejectBadFrame},
		{roomSubject("lobby"), frameMsg("lobby", fragment), rejectBadFrame},
		{roomSubject("lobby"), frameMsg("lobby", masked), rejectBadFrame},
		{roomSubject("lobby"), frameMsg("lobby", text[:len(text)-1]), rejectBadFrame},
		{roomSubject("lobby"), frameMsg("lobby", append(append([]byte(nil), text...), text...)), rejectBadFrame},
		{roomSubject("lobby"), frameMsg("lobby", append([]byte{0x81 | 0x40}, text[1:]...)), rejectBadFrame}, // RSV1
		{roomSubject("lobby"), frameMsg("lobby", huge), rejectTooLarge},
		{"wsedge.all", frameMsg("", huge), rejectTooLarge},
		{roomSubject("lobby"), frameMsg("lobby", badUTF8), rejectBadUTF8},
		{userSubject("bob"), deliverMsg("bob", []byte("\"caf\xe9\"")), rejectBadUTF8},
		{userSubject("bob"), []byte{opDeliver, 0xff}, rejectMalformed},
		{userSubject("bob"), nil, rejectMalformed},
		{userSubject("bob"), append(nameMsg(opKick, "bob"), 'x'), rejectMalformed},
		{userSubject("bob"), claimMsg("bob", "", time.Now().UnixNano()+1e12), rejectMalformed},
		{"wsedge.node", []byte("+"), rejectMalformed},
		{"wsedge.node", []byte("-bad\nnode"), rejectMalformed},
	}
	want := map[string]float64{}
	for _, f := range forged {
		if err := raw.Publish(f.subject, f.data); err != nil {
			t.Fatal(err)
		}
		want[f.reason]++
	}
	if err := raw.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, reason := range rejectReasons {
		testkit.Eventually(t, 5*time.Second, "rejected "+reason, func() bool {
			return count(b.m.rejected, reason) == want[reason]
		})
	}

	// Every forged message has been handled: the first things the
	// application gets are the genuine messages that follow.
	real := frame.AppendFrame(nil, ws.OpText, []byte(`{"type":"message","room":"lobby","data":"real"}`))
	if err := raw.Publish(roomSubject("lobby"), frameMsg("lobby", real)); err != nil {
		t.Fatal(err)
	}
	if err := raw.Publish(userSubject("alice"), deliverMsg("alice", []byte(`{"type":"message","data":"direct"}`))); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, "the genuine messages delivered", func() bool { return len(local.log()) == 2 })
	got := local.log()
	slices.Sort(got) // two subjects: two dispatchers, no order between them
	if want := []string{`room lobby ` + itoa(len(real)) + ` bytes`, `user alice {"type":"message","data":"direct"}`}; !slices.Equal(got, want) {
		t.Fatalf("delivered %q, want %q", got, want)
	}
	if !local.HasUser("bob") || !local.HasUser("alice") {
		t.Fatal("a forged message removed a user")
	}
}

// The dispatcher queues are bounded in bytes: past -cluster-queue-bytes a
// message is dropped and counted, and the bytes held come back to zero
// (issue 12, item 11).
func TestClusterQueueBoundedInBytes(t *testing.T) {
	const limit = 64 << 10
	ns := startNATS(t)
	local := newFakeLocal()
	gate := make(chan struct{})
	local.gate = gate // the dispatcher blocks on its first message while the others queue behind it
	opened := false
	defer func() {
		if !opened {
			close(gate)
		}
	}()
	b := startBus(t, ns, local, func(c *Config) {
		c.Dispatchers = 1
		c.QueueBytes = limit
	})
	local.join(b, "lobby")
	if err := b.Flush(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	raw := rawNATS(t, ns)

	const sent = 20
	fr := frame.AppendFrame(nil, ws.OpText, []byte(`"`+strings.Repeat("y", 16<<10)+`"`))
	for range sent {
		if err := raw.Publish(roomSubject("lobby"), frameMsg("lobby", fr)); err != nil {
			t.Fatal(err)
		}
	}
	if err := raw.Flush(); err != nil {
		t.Fatal(err)
	}
	size := float64(len(frameMsg("lobby", fr)) + len(roomSubject("lobby")))
	var dropped float64
	testkit.Eventually(t, 5*time.Second, "every message queued or dropped", func() bool {
		dropped = count(b.m.queueDrops, "bytes")
		return dropped+float64(b.queued.Load())/size == sent
	})
	if queued := float64(b.queued.Load()); queued > limit || queued+size <= limit {
		t.Fatalf("%v bytes queued, limit %d, messages of %v", queued, limit, size)
	}
	close(gate)
	opened = true
	delivered := sent - int(dropped)
	testkit.Eventually(t, 5*time.Second, "queue empty", func() bool { return b.queued.Load() == 0 })
	if got := len(local.log()); got != delivered {
		t.Fatalf("delivered %d, want %d (dropped %v)", got, delivered, dropped)
	}
	if got := count(b.m.remote, kindRoom); got != float64(delivered) {
		t.Fatalf("remote deliveries %v, want %d", got, delivered)
	}
}

// A client looping join and leave does not make a SUB and an UNSUB on NATS
// for each: the room's subscription outlives the last member by a grace.
func TestClusterJoinLeaveLoopKeepsSubscription(t *testing.T) {
	ns := startNATS(t)
	local := newFakeLocal()
	b := startBus(t, ns, local, nil)
	local.join(b, "r")
	first := b.subscription("r")
	for range 50 {
		local.leave(b, "r")
		local.join(b, "r")
	}
	if got := b.subscription("r"); got == nil || got != first {
		t.Fatalf("the room's subscription changed (%p, was %p)", got, first)
	}
	// The room still reaches this node from another.
	if err := b.Flush(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	raw := rawNATS(t, ns)
	fr := frame.AppendFrame(nil, ws.OpText, []byte(`"x"`))
	reply, err := raw.Request(roomSubject("r"), frameMsg("r", fr), 5*time.Second)
	if err != nil || string(reply.Data) != "1" {
		t.Fatalf("room frame: %v %v", reply, err)
	}

	local.leave(b, "r")
	testkit.Eventually(t, 3*roomSubGrace, "the idle subscription dropped", func() bool {
		return b.subscription("r") == nil && b.rooms.nidle.Load() == 0
	})
	if err := b.Flush(5 * time.Second); err != nil { // the UNSUB reaches NATS before the request
		t.Fatal(err)
	}
	if _, err := raw.Request(roomSubject("r"), frameMsg("r", fr), time.Second); err != nats.ErrNoResponders {
		t.Fatalf("room frame after the grace: %v, want no responders", err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
