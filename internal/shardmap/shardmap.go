// Package shardmap is a string-keyed map split into shards, each behind its
// own lock, so that lookups of different keys rarely wait for each other.
// It holds the application's user and room registries and the cluster's
// subscription tables; it never starts a goroutine.
package shardmap

import (
	"hash/maphash"
	"sync"
)

// Shards is the number of shards, a power of two.
const Shards = 64

// Map maps strings to values of type V. The zero value is not usable: call
// Init (or New) first. A callback runs with its shard locked: it must not
// call back into the same Map, and must not block.
type Map[V any] struct {
	seed   maphash.Seed
	shards [Shards]shard[V]
}

type shard[V any] struct {
	mu sync.RWMutex
	m  map[string]V
}

// New returns an initialised map.
func New[V any]() *Map[V] {
	m := &Map[V]{}
	m.Init()
	return m
}

// Init prepares a Map embedded in another value.
func (m *Map[V]) Init() {
	m.seed = maphash.MakeSeed()
	for i := range m.shards {
		m.shards[i].m = make(map[string]V)
	}
}

func (m *Map[V]) shard(key string) *shard[V] {
	return &m.shards[maphash.String(m.seed, key)&(Shards-1)]
}

// Get returns key's value under its shard's read lock.
func (m *Map[V]) Get(key string) (V, bool) {
	sh := m.shard(key)
	sh.mu.RLock()
	v, ok := sh.m[key]
	sh.mu.RUnlock()
	return v, ok
}

// Read calls fn with key's shard under its read lock; fn only reads.
func (m *Map[V]) Read(key string, fn func(shard map[string]V)) {
	sh := m.shard(key)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	fn(sh.m)
}

// Write calls fn with key's shard under its write lock.
func (m *Map[V]) Write(key string, fn func(shard map[string]V)) {
	sh := m.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	fn(sh.m)
}

// WriteEach calls fn with every shard in turn, each under its write lock.
func (m *Map[V]) WriteEach(fn func(shard map[string]V)) {
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.Lock()
		fn(sh.m)
		sh.mu.Unlock()
	}
}

// Len counts the entries, one shard at a time: not a snapshot of the whole.
func (m *Map[V]) Len() int {
	n := 0
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.RLock()
		n += len(sh.m)
		sh.mu.RUnlock()
	}
	return n
}

// EachShard calls fn with a copy of each non-empty shard's values, taken
// under its read lock and handed over after the lock is released, so fn
// may take its time.
func (m *Map[V]) EachShard(fn func(values []V)) {
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.RLock()
		var snap []V
		if len(sh.m) > 0 {
			snap = make([]V, 0, len(sh.m))
			for _, v := range sh.m {
				snap = append(snap, v)
			}
		}
		sh.mu.RUnlock()
		if len(snap) > 0 {
			fn(snap)
		}
	}
}
