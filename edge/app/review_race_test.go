package app

import (
	"fmt"
	"testing"
)

// A join recovered from JetStream adds its member on a goroutine of its
// own while the connection's owner goes on with the next messages: the
// publish bit it sets must not race with the owner's look at the hook wait.
func TestClusterHistoryRecoveryJoinRacesOwner(t *testing.T) {
	h := newHookServer(t)
	c := startHistClusterWith(t, startNATSWith(t, jsOpts(-1, t.TempDir())), 1,
		Config{RoomPolicy: PolicyHook, JoinHook: h.URL})
	ack, _ := c.dial(0, "bob").joinAck("allow-0", 0, "")
	epoch := ack["epoch"].(string)
	for i := 1; i <= 20; i++ {
		alice := c.dial(0, fmt.Sprintf("alice%d", i)) // no policy state yet: ext nil
		alice.send(fmt.Sprintf(`{"type":"join","room":"allow-%d","id":"j","since":{"offset":0,"epoch":%q}}`, i, epoch))
		for range 5 {
			alice.send(`{"type":"ping","id":"p"}`)
		}
		for n := 0; n < 6; n++ {
			if m := alice.readJSON(); m["type"] != "ack" && m["type"] != "pong" {
				t.Fatalf("join %d: %v", i, m)
			}
		}
		alice.send(`{"type":"ping","id":"p"}`) // the owner looks at ext after the recovery set it
		alice.expect(`{"type":"pong","id":"p"}`)
	}
}

// A join recovered from JetStream is done before the connection's next
// message is handled: a publish right behind it is a member's, and a leave
// right behind it leaves the room.
func TestClusterHistoryRecoveryJoinKeepsOrder(t *testing.T) {
	c := startHistCluster(t, startNATSWith(t, jsOpts(-1, t.TempDir())), 1)
	ack, _ := c.dial(0, "bob").joinAck("r0", 0, "")
	epoch := ack["epoch"].(string)
	alice := c.dial(0, "alice")
	for i := 1; i <= 5; i++ {
		room := fmt.Sprintf("r%d", i)
		alice.send(fmt.Sprintf(`{"type":"join","room":%q,"id":"j","since":{"offset":0,"epoch":%q}}`, room, epoch))
		alice.send(fmt.Sprintf(`{"type":"publish","room":%q,"data":1,"id":"p"}`, room))
		alice.send(fmt.Sprintf(`{"type":"leave","room":%q,"id":"l"}`, room))
		for _, want := range []string{"j", "p", "l"} {
			for {
				m := alice.readJSON()
				if m["type"] == "message" {
					continue
				}
				if m["type"] != "ack" || m["id"] != want {
					t.Fatalf("%s: want the ack of %s, got %v", room, want, m)
				}
				break
			}
		}
		alice.send(`{"type":"ping","id":"x"}`)
		for {
			m := alice.readJSON()
			if m["type"] == "pong" {
				break
			}
			if m["type"] != "message" {
				t.Fatalf("%s: %v", room, m)
			}
		}
	}
	if rooms := c.nodes[0].app.users.get("alice").roomList(); len(rooms) != 0 {
		t.Fatalf("alice left every room she joined, still in %v", rooms)
	}
}
