package shardmap

import (
	"maps"
	"slices"
	"strconv"
	"sync"
	"testing"
)

// The map against a plain map, written from several goroutines.
func TestMapAgainstPlainMap(t *testing.T) {
	m := New[int]()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				k := strconv.Itoa(g*1000 + i)
				m.Write(k, func(sh map[string]int) { sh[k] = i })
				if i%3 == 0 {
					m.Write(k, func(sh map[string]int) { delete(sh, k) })
				}
			}
		}()
	}
	wg.Wait()
	want := map[string]int{}
	for g := range 4 {
		for i := range 1000 {
			if i%3 != 0 {
				want[strconv.Itoa(g*1000+i)] = i
			}
		}
	}
	if m.Len() != len(want) {
		t.Fatalf("Len %d, want %d", m.Len(), len(want))
	}
	for k, v := range want {
		if got, ok := m.Get(k); !ok || got != v {
			t.Fatalf("Get(%s) = %d %v, want %d", k, got, ok, v)
		}
	}
	var all []int
	m.EachShard(func(vs []int) { all = append(all, vs...) })
	slices.Sort(all)
	if w := slices.Sorted(maps.Values(want)); !slices.Equal(all, w) {
		t.Fatalf("EachShard gave %d values, want %d", len(all), len(w))
	}
	n := 0
	m.WriteEach(func(sh map[string]int) { n += len(sh) })
	if n != len(want) {
		t.Fatalf("WriteEach saw %d, want %d", n, len(want))
	}
}
