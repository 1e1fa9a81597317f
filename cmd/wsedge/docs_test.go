package main

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// wsedgeCommand finds a wsedge invocation in a line of a doc ("wsedge ...",
// "go run ./cmd/wsedge ...", "ExecStart=/usr/local/bin/wsedge ...") and
// captures its arguments.
var wsedgeCommand = regexp.MustCompile(`(?:^|[\s=/])wsedge(\s.*)?$`)

// docCommands returns every wsedge command line in the Markdown file: in
// fenced code blocks (continuation lines joined) and in inline code spans
// that start with the command.
func docCommands(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var cmds []string
	add := func(line string) {
		if i := strings.Index(" "+line, " #"); i >= 0 {
			line = line[:max(i-1, 0)] // a shell or ini comment
		}
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "go ") && !strings.HasPrefix(line, "go run ") {
			return // go build -o .../wsedge ./cmd/wsedge builds it; it runs nothing
		}
		if m := wsedgeCommand.FindStringSubmatch(line); m != nil {
			cmds = append(cmds, strings.TrimSpace(m[1]))
		}
	}
	inCode, pending := false, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inCode = !inCode
			continue
		}
		if inCode {
			if strings.HasSuffix(line, `\`) {
				pending += strings.TrimSuffix(line, `\`) + " "
				continue
			}
			add(pending + line)
			pending = ""
			continue
		}
		spans := strings.Split(line, "`")
		for i := 1; i < len(spans); i += 2 {
			// "wsedge -flag ...": a command, not a name such as `wsedge listening`.
			if s := spans[i]; strings.HasPrefix(s, "wsedge -") || strings.HasPrefix(s, "go run ./cmd/wsedge") {
				add(s)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cmds
}

// shellArgs splits a documented command's arguments as a shell would for
// these simple lines: up to a control operator, quotes removed ("$TOKEN"
// stays a placeholder value).
func shellArgs(s string) []string {
	if i := strings.IndexAny(s, "&|;<>"); i >= 0 {
		s = s[:i]
	}
	var args []string
	for _, f := range strings.Fields(s) {
		args = append(args, strings.Trim(f, `"'`))
	}
	return args
}

// Every wsedge command in the README and docs/ runs as written: its flags
// exist and their values parse (checked by running it with -version, which
// parses everything and exits before binding or reading files).
func TestDocCommandsRun(t *testing.T) {
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../../README.md")
	total := 0
	for _, path := range files {
		for _, cmd := range docCommands(t, path) {
			total++
			args := append(shellArgs(cmd), "-version")
			var stdout, stderr bytes.Buffer
			if code := run(args, &stdout, &stderr, nil); code != 0 {
				t.Errorf("%s: `wsedge %s` does not run (exit %d): %s", filepath.Base(path), cmd, code, strings.TrimSpace(stderr.String()))
			}
		}
	}
	if total < 5 {
		t.Fatalf("found only %d wsedge commands in the docs: is the extraction broken?", total)
	}
}

func TestDocCommandsExtraction(t *testing.T) {
	dir := t.TempDir()
	md := filepath.Join(dir, "x.md")
	doc := "Run `wsedge -backlog 65535` or `wsbench -servers wsedge,nbio`; see `wsedge listening`.\n" +
		"```ini\n# wsedge drains on SIGTERM\nExecStart=/usr/local/bin/wsedge -addr :8080 -admin-token-file /etc/t\n```\n" +
		"```sh\ngo run ./cmd/wsedge -jwt-secret \"$SECRET\" \\\n    -admin 0.0.0.0:9090   # production\n" +
		"go run ./cmd/wsedge -addr 127.0.0.1:8080 &\ngo run ./cmd/wsbench compare   # wsedge against others\n```\n"
	if err := os.WriteFile(md, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	got := docCommands(t, md)
	want := []string{"-backlog 65535", "-addr :8080 -admin-token-file /etc/t", `-jwt-secret "$SECRET"      -admin 0.0.0.0:9090`, "-addr 127.0.0.1:8080 &"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("extracted\n%q\nwant\n%q", got, want)
	}
	if a := shellArgs(want[2]); strings.Join(a, ",") != "-jwt-secret,$SECRET,-admin,0.0.0.0:9090" {
		t.Fatalf("shellArgs: %q", a)
	}
}
