package frame

import (
	"encoding/binary"
	"unicode/utf8"
)

// States of the incremental UTF-8 validator. The state lives in one byte of
// the Decoder, so a text message split anywhere (between frames, between
// reads, inside a code point) is validated as its bytes arrive and fails at
// the first byte that cannot start or continue a well-formed sequence
// (Unicode Table 3-7; Autobahn section 6.4 checks this).
const (
	utf8Accept  uint8 = iota // between code points
	utf8Need1                // one more byte in 80..BF
	utf8Need2                // two more bytes in 80..BF
	utf8Need3                // three more bytes in 80..BF
	utf8AfterE0              // A0..BF, then one more
	utf8AfterED              // 80..9F (no surrogates), then one more
	utf8AfterF0              // 90..BF (no overlongs), then two more
	utf8AfterF4              // 80..8F (≤ U+10FFFF), then two more
	utf8Reject               // an ill-formed sequence was seen
)

// utf8Step advances the validator by one byte.
func utf8Step(state uint8, c byte) uint8 {
	switch state {
	case utf8Accept:
		switch {
		case c < 0x80:
			return utf8Accept
		case c < 0xC2:
			return utf8Reject
		case c < 0xE0:
			return utf8Need1
		case c == 0xE0:
			return utf8AfterE0
		case c == 0xED:
			return utf8AfterED
		case c < 0xF0:
			return utf8Need2
		case c == 0xF0:
			return utf8AfterF0
		case c < 0xF4:
			return utf8Need3
		case c == 0xF4:
			return utf8AfterF4
		}
		return utf8Reject
	case utf8Need1, utf8Need2, utf8Need3:
		if c >= 0x80 && c <= 0xBF {
			return state - 1 // Need1 - 1 == Accept
		}
	case utf8AfterE0:
		if c >= 0xA0 && c <= 0xBF {
			return utf8Need1
		}
	case utf8AfterED:
		if c >= 0x80 && c <= 0x9F {
			return utf8Need1
		}
	case utf8AfterF0:
		if c >= 0x90 && c <= 0xBF {
			return utf8Need2
		}
	case utf8AfterF4:
		if c >= 0x80 && c <= 0x8F {
			return utf8Need2
		}
	}
	return utf8Reject
}

// validateUTF8 continues validation from state over p and returns the new
// state (utf8Reject as soon as p holds an ill-formed byte). Whole code points
// go through the standard library and runs of ASCII eight bytes at a time;
// only a sequence cut by the end of p goes byte by byte through utf8Step.
func validateUTF8(state uint8, p []byte) uint8 {
	i := 0
	for ; i < len(p) && state != utf8Accept; i++ {
		if state = utf8Step(state, p[i]); state == utf8Reject {
			return utf8Reject
		}
	}
	for i < len(p) {
		for i+8 <= len(p) && binary.LittleEndian.Uint64(p[i:])&0x8080808080808080 == 0 {
			i += 8
		}
		if i == len(p) {
			break
		}
		if p[i] < utf8.RuneSelf {
			i++
			continue
		}
		if utf8.FullRune(p[i:]) {
			r, size := utf8.DecodeRune(p[i:])
			if r == utf8.RuneError && size == 1 {
				return utf8Reject
			}
			i += size
			continue
		}
		// A well-formed prefix cut by the end of p: carry it in the state.
		for ; i < len(p); i++ {
			if state = utf8Step(state, p[i]); state == utf8Reject {
				return utf8Reject
			}
		}
	}
	return state
}
