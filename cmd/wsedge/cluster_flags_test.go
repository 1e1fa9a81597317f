package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Bus credentials that cannot be read stop the start (exit 2) with the
// file named, instead of leaving the node retrying NATS forever.
func TestClusterCredentialFlagsRefused(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad")
	if err := os.WriteFile(bad, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-nats-nkey", missing}, "nkey seed " + missing},
		{[]string{"-nats-nkey", bad}, "nkey seed " + bad},
		{[]string{"-nats-creds", missing}, "credentials " + missing},
		{[]string{"-nats-creds", bad}, "credentials " + bad},
		{[]string{"-nats-ca", bad}, "CA " + bad},
		{[]string{"-nats-creds", bad, "-nats-nkey", bad}, "not both"},
	} {
		var stderr bytes.Buffer
		args := append([]string{"-addr", "127.0.0.1:0", "-admin", "127.0.0.1:0", "-nats", "nats://127.0.0.1:1"}, tc.args...)
		if code := run(args, &bytes.Buffer{}, &stderr, nil); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", tc.args, code, stderr.String())
		}
		if !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: stderr %q does not mention %q", tc.args, stderr.String(), tc.want)
		}
	}
}
