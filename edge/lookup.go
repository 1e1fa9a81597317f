package edge

// Lookup returns the live connection whose ID is id, or nil when it has
// closed (IDs carry a generation, so a reused socket number never answers
// for an old ID). It lets code that keeps only an ID, such as a timer of
// the application's own, reach the connection later. Call it after Start.
func (s *Server) Lookup(id uint64) *Conn {
	if s.poller == nil {
		return nil
	}
	if nc := s.poller.Lookup(id); nc != nil {
		return connOf(nc)
	}
	return nil
}
