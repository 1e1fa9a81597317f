// Package names holds the one rule for user ids, room names and node ids,
// shared by the application (which admits them) and the cluster bus (which
// checks what other nodes send); it does nothing else.
package names

// MaxLen bounds user ids, room names and node ids.
const MaxLen = 128

// Valid reports whether s is 1–128 printable ASCII bytes (0x20–0x7E).
func Valid(s string) bool {
	if len(s) == 0 || len(s) > MaxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
