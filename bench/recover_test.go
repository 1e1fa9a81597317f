package bench

import "testing"

// The recover checker counts a message that never came as missing and
// one that came twice or late as duplicated or reordered.
func TestRecoverCheckerCountsMissingAndDuplicates(t *testing.T) {
	r := &recoverRun{clients: make([]recoverClient, 1)}
	cl := &r.clients[0]
	for _, m := range []string{
		`{"type":"ack","id":1,"offset":0,"epoch":"e"}`,
		`{"type":"message","room":"r","offset":1,"data":{"k":0}}`,
		`{"type":"message","room":"r","offset":2,"data":{"k":1}}`,
		`{"type":"message","room":"r","offset":2,"data":{"k":1}}`, // again
		`{"type":"message","room":"r","offset":5,"data":{"k":4}}`, // 2 and 3 skipped
		`{"type":"message","room":"r","offset":4,"data":{"k":3}}`, // late
	} {
		r.onMessage(cl, []byte(m))
	}
	if r.joined.Load() != 1 || cl.offset != 4 || cl.epoch != "e" {
		t.Fatalf("joined %d, offset %d, epoch %q", r.joined.Load(), cl.offset, cl.epoch)
	}
	if cl.missing.Load() != 2 || r.duplicated.Load() != 2 || cl.next.Load() != 5 {
		t.Fatalf("missing %d, duplicated %d, next %d; want 2, 2, 5", cl.missing.Load(), r.duplicated.Load(), cl.next.Load())
	}
}
