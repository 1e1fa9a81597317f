package frame

import (
	"math/rand/v2"
	"testing"
	"unicode/utf8"
)

// TestUTF8StepExhaustive checks the validator against the standard library
// on every sequence of one and two bytes and on every three-byte sequence
// after a lead byte: the state rejects exactly when no continuation can
// make the bytes valid, and accepts exactly when they are valid.
func TestUTF8StepExhaustive(t *testing.T) {
	check := func(p []byte) {
		st := validateUTF8(utf8Accept, p)
		if (st == utf8Accept) != utf8.Valid(p) || (st == utf8Reject) == viableUTF8(p) {
			t.Fatalf("% x: state %d, valid %v, viable %v", p, st, utf8.Valid(p), viableUTF8(p))
		}
	}
	for a := range 256 {
		check([]byte{byte(a)})
		for b := range 256 {
			check([]byte{byte(a), byte(b)})
		}
	}
	for a := 0xC0; a < 0x100; a++ {
		for b := 0x80; b < 0xC0; b++ {
			for c := range 256 {
				check([]byte{byte(a), byte(b), byte(c)})
			}
		}
	}
}

// TestUTF8Split checks that validating in pieces equals validating whole.
func TestUTF8Split(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	alphabet := []string{"a", "é", "€", "😀", "\xff", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x82", "0123456789abcdef"}
	for range 20000 {
		var s []byte
		for range rng.IntN(12) {
			s = append(s, alphabet[rng.IntN(len(alphabet))]...)
		}
		whole := validateUTF8(utf8Accept, s)
		st := utf8Accept
		for rest := s; len(rest) > 0 && st != utf8Reject; {
			n := 1 + rng.IntN(len(rest))
			st = validateUTF8(st, rest[:n])
			rest = rest[n:]
		}
		if (whole == utf8Reject) != (st == utf8Reject) || whole != utf8Reject && whole != st {
			t.Fatalf("%q: whole %d, pieces %d", s, whole, st)
		}
		if (whole == utf8Accept) != utf8.Valid(s) {
			t.Fatalf("%q: state %d, utf8.Valid %v", s, whole, utf8.Valid(s))
		}
	}
}
