package app

import (
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/wsedge/wsedge/edge/cluster"
)

// BenchmarkRoomMemory reports what rooms add to the heap, after a
// collection, beyond the users themselves (docs/operations.md, section 6):
//
//   - shared: every user joins the same 64 rooms, so the figure is the cost
//     of one membership in a big room (B/membership);
//   - small: users join rooms of 4 members, 64 rooms each (B/membership);
//   - unique: every user joins 64 rooms nobody else is in, so the figure is
//     the cost of a room with its one membership (B/room);
//   - unique-cluster: the same on a cluster node, where each room is also a
//     NATS subscription. The NATS server runs in this process unless
//     WSEDGE_BENCH_NATS names one (nats://127.0.0.1:4222), so only the
//     latter gives the node's own figure.
//
// Room names are built during the joins, as a client's join message
// builds them.
//
//	go test -run '^$' -bench BenchmarkRoomMemory -benchtime 1x ./edge/app
func BenchmarkRoomMemory(b *testing.B) {
	const users, perUser = 2000, 64
	local := func(b *testing.B) *App {
		return &App{cfg: Config{MaxRoomsPerConn: perUser, MaxRooms: users * perUser}, users: newUsers(), rooms: newRooms(), cluster: single{}}
	}
	for _, tc := range []struct {
		name    string
		cluster bool
		room    func(u, k int) string
		unit    string
		per     int // what the figure is per: memberships or rooms
	}{
		{"shared", false, func(_, k int) string { return "room-" + strconv.Itoa(k) }, "B/membership", users * perUser},
		{"small", false, func(u, k int) string { return "room-" + strconv.Itoa(u/4) + "-" + strconv.Itoa(k) }, "B/membership", users * perUser},
		{"unique", false, func(u, k int) string { return "room-" + strconv.Itoa(u) + "-" + strconv.Itoa(k) }, "B/room", users * perUser},
		{"unique-cluster", true, func(u, k int) string { return "room-" + strconv.Itoa(u) + "-" + strconv.Itoa(k) }, "B/room", users * perUser},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				var a *App
				if tc.cluster {
					url := os.Getenv("WSEDGE_BENCH_NATS")
					if url == "" {
						url = startNATS(b, -1).ClientURL()
					}
					ts := start(b, Config{MaxRoomsPerConn: perUser, MaxRooms: users * perUser, Cluster: &cluster.Config{URLs: []string{url}, NodeID: "bench"}}, nil)
					b.Cleanup(ts.app.Close)
					a = ts.app
				} else {
					a = local(b)
				}
				us := make([]*user, users)
				now := time.Now().UnixNano()
				for i := range us {
					us[i] = &user{id: "user-" + strconv.Itoa(i), connectedAt: now}
					a.users.put(us[i], 1)
				}
				before := heapAfterGC()
				for i, u := range us {
					for k := range perUser {
						if err := a.join(u, tc.room(i, k), false); err != nil {
							b.Fatal(err)
						}
					}
				}
				if tc.cluster {
					if err := a.cluster.(*cluster.Bus).Flush(10 * time.Second); err != nil {
						b.Fatal(err)
					}
				}
				after := heapAfterGC()
				b.ReportMetric(float64(after-before)/float64(tc.per), tc.unit)
				b.ReportMetric(float64(a.rooms.count.Load()), "rooms")
				runtime.KeepAlive(us)
			}
		})
	}
}

func heapAfterGC() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}
