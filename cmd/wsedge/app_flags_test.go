package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The admin API off loopback without a token refuses to start (exit 2) and
// says why; so do bad application flags.
func TestAppFlagsRefused(t *testing.T) {
	pem := filepath.Join(t.TempDir(), "key.pem")
	if err := os.WriteFile(pem, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-admin", "0.0.0.0:0"}, "admin token"},
		{[]string{"-jwt-public-key", filepath.Join(t.TempDir(), "missing.pem")}, "-jwt-public-key"},
		{[]string{"-jwt-public-key", pem}, "JWT public key"},
		{[]string{"-jwt-secret", "s", "-jwt-public-key", pem}, "JWT"},
		{[]string{"-client-rate", "-1"}, "client rate"},
	} {
		var stderr bytes.Buffer
		args := append([]string{"-addr", "127.0.0.1:0"}, tc.args...)
		if code := run(args, &bytes.Buffer{}, &stderr, nil); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", tc.args, code, stderr.String())
		}
		if !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: stderr %q does not mention %q", tc.args, stderr.String(), tc.want)
		}
	}
}
