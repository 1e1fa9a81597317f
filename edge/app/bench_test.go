package app

import (
	"runtime"
	"strconv"
	"testing"
	"time"
)

// BenchmarkHubMemory holds a million users, each in one of a million rooms
// (the shape of a million one-to-one conversations), and reports the
// application's bytes per user: the user struct, its registry entry, its
// room slice and its share of the room index.
func BenchmarkHubMemory(b *testing.B) {
	const n = 1 << 20
	a := &App{cfg: Config{MaxRoomsPerConn: 64, MaxRooms: n}, cluster: single{}}
	hubMemory(b, a, n, func(u *user, room string) error { return a.join(u, room, false) })
}

// hubMemory fills a's hub with n users, each joined by join to the room
// named after its neighbour, and reports the bytes per user.
func hubMemory(b *testing.B, a *App, n int, join func(u *user, room string) error) {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = "user-" + strconv.Itoa(i)
	}
	for b.Loop() {
		a.users, a.rooms = newUsers(), newRooms()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		now := time.Now().UnixNano()
		for i, id := range ids {
			u := &user{id: id, connectedAt: now}
			a.users.put(u, 1)
			if err := join(u, ids[i^1]); err != nil {
				b.Fatal(err)
			}
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(n), "B/user")
		if a.users.count.Load() != int64(n) || a.rooms.count.Load() != int64(n) {
			b.Fatalf("%d users, %d rooms", a.users.count.Load(), a.rooms.count.Load())
		}
	}
}

func BenchmarkParseClientMessage(b *testing.B) {
	msg := []byte(`{"type":"publish","room":"lobby","data":{"text":"hello, world","n":[1,2,3]},"id":"c42"}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, perr := parseClientMessage(msg); perr != nil {
			b.Fatal(perr.message)
		}
	}
}
