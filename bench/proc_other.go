//go:build !linux

package bench

import "fmt"

// procSample reads /proc, which only Linux has.
func procSample(pid int) (*ServerSample, error) {
	return nil, fmt.Errorf("%w: -pid reads /proc: unsupported platform", ErrConfig)
}
