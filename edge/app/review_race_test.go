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
