package app

import (
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/wsedge/wsedge/internal/testkit"
)

// The application's series change as clients and the admin API act.
func TestMetricsScraped(t *testing.T) {
	ts := start(t, Config{}, nil)
	for _, name := range []string{"wsedge_users", "wsedge_rooms"} {
		if got := ts.scrape(name, ""); got != 0 {
			t.Errorf("%s at start = %v", name, got)
		}
	}
	alice, bob := ts.dial("alice"), ts.dial("bob")
	alice.send(`{"type":"join","room":"r1","id":1}`)
	alice.expect(`{"type":"ack","id":1}`)
	alice.send(`{"type":"join","room":"r2","id":1}`)
	alice.expect(`{"type":"ack","id":1}`)
	bob.send(`{"type":"join","room":"r1","id":1}`)
	bob.expect(`{"type":"ack","id":1}`)
	alice.send(`{"type":"publish","room":"r1","data":1,"id":2}`)
	alice.expect(`{"type":"message","from":"alice","room":"r1","data":1}`)
	alice.expect(`{"type":"ack","id":2}`)
	bob.expect(`{"type":"message","from":"alice","room":"r1","data":1}`)
	alice.send(`{"type":"send","to":"bob","data":2}`)
	bob.expect(`{"type":"message","from":"alice","data":2}`)
	alice.send(`{"type":"send","to":"nobody","data":2}`)
	alice.expect(`{"type":"error","code":"not_connected","message":"user nobody is not connected"}`)
	alice.send(`{"type":"ping","id":3}`)
	alice.expect(`{"type":"pong","id":3}`)
	ts.admin("POST", "/v1/users/bob/messages", `3`, http.StatusOK)
	bob.expect(`{"type":"message","data":3}`)
	ts.admin("GET", "/v1/users/nobody", "", http.StatusNotFound)

	for _, tc := range []struct {
		name, labels string
		want         float64
	}{
		{"wsedge_users", "", 2},
		{"wsedge_rooms", "", 2},
		{"wsedge_client_messages_total", "type=join", 3},
		{"wsedge_client_messages_total", "type=publish", 1},
		{"wsedge_client_messages_total", "type=send", 2},
		{"wsedge_client_messages_total", "type=ping", 1},
		{"wsedge_deliveries_total", "kind=room", 2},
		{"wsedge_deliveries_total", "kind=user", 2},
		{"wsedge_drops_total", "reason=not_connected", 1},
		{"wsedge_admin_requests_total", "route=/v1/users/{id}/messages,status=200", 1},
		{"wsedge_admin_requests_total", "route=/v1/users/{id},status=404", 1},
	} {
		if got := ts.scrape(tc.name, tc.labels); got != tc.want {
			t.Errorf("%s{%s} = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}

	alice.Close()
	testkit.Eventually(t, 5*time.Second, "users and rooms gauges fall", func() bool {
		return ts.scrape("wsedge_users", "") == 1 && ts.scrape("wsedge_rooms", "") == 1
	})
}

// Every series the operator docs name is on a fresh server's first scrape
// (at zero), not only after its first event: an alert on a series that
// does not exist yet never fires. Series of features that are off here
// (history, the join hook, the cluster bus) are left out.
func TestDocumentedSeriesAtStart(t *testing.T) {
	ts := start(t, Config{}, nil)
	name := regexp.MustCompile(`wsedge_[a-z_]*[a-z]`)
	fams := testkit.Families(t, ts.adminURL("/metrics"))
	seen := map[string]bool{}
	for _, doc := range []string{"../../docs/operations.md", "../../docs/admin-api.md"} {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range name.FindAllString(string(b), -1) {
			if seen[n] || strings.HasPrefix(n, "wsedge_history_") || strings.HasPrefix(n, "wsedge_room_hook_") || strings.HasPrefix(n, "wsedge_bus") {
				continue
			}
			seen[n] = true
			if _, ok := fams[n]; !ok {
				t.Errorf("%s (%s) is not on the first scrape", n, doc)
			}
		}
	}
}
