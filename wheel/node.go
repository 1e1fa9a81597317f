package wheel

// nilIndex ends a list.
const nilIndex int32 = -1

// Node storage grows a page at a time. A page is never moved or freed, so an
// index (and a Handle) stays valid for the wheel's life and growth never
// copies the resident timers. A page holds no pointers, so the garbage
// collector never scans it.
const (
	pageShift = 12
	pageSize  = 1 << pageShift // 4096 nodes, 128 KiB
	pageMask  = pageSize - 1
	maxNodes  = 1<<31 - 1
)

type nodeState uint32

const (
	stateFree    nodeState = iota // on the free list; handles to it are stale
	statePending                  // linked in the slot of its deadline
	stateFired                    // delivered (or being delivered); in no list until Reset or Stop
	stateStaged                   // armed, on the staging list; deadline holds the delay
)

// armed reports whether a node will fire unless stopped: pending in a slot
// or staged for the driver to place.
func (s nodeState) armed() bool { return s == statePending || s == stateStaged }

// node is one timer: 32 bytes, so a cache line holds two.
type node struct {
	next, prev int32  // slot or staging list links; next also links the free list
	gen        uint32 // bumped on release; never 0
	state      nodeState
	deadline   int64 // absolute tick (the slot is deadline & mask); the delay in ns while staged
	data       uint64
}

type nodePage [pageSize]node

// nodeStore hands out nodes from pages and recycles them through a free list.
type nodeStore struct {
	pages []*nodePage
	used  int32 // nodes ever handed out; indices below it are valid
	free  int32 // head of the free list, or nilIndex
}

func newNodeStore() nodeStore { return nodeStore{free: nilIndex} }

func (s *nodeStore) at(idx int32) *node {
	return &s.pages[idx>>pageShift][idx&pageMask]
}

// alloc returns a node that is in no list, or nil when the index space is
// exhausted.
func (s *nodeStore) alloc() (int32, *node) {
	if idx := s.free; idx != nilIndex {
		n := s.at(idx)
		s.free = n.next
		n.next = nilIndex
		return idx, n
	}
	if s.used == maxNodes {
		return nilIndex, nil
	}
	idx := s.used
	if int(idx>>pageShift) == len(s.pages) {
		s.pages = append(s.pages, new(nodePage))
	}
	s.used++
	n := s.at(idx)
	n.gen = 1
	n.next, n.prev = nilIndex, nilIndex
	return idx, n
}

// release puts an unlinked node on the free list and bumps its generation,
// which makes every handle to it stale.
func (s *nodeStore) release(idx int32, n *node) {
	n.gen++
	if n.gen == 0 {
		n.gen = 1
	}
	n.state = stateFree
	n.data = 0
	n.next = s.free
	n.prev = nilIndex
	s.free = idx
}
