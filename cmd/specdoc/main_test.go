package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	reports := suite(
		it(passed, node("relays a message", "chat_test.go:15"), server, netfake, twoConns),
		it(failed, node("relays a message", "chat_test.go:15"), server, loopback, twoConns),
	)
	data, err := json.Marshal(reports) // the same encoding ginkgo --json-report uses
	if err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(dir, "report.json")
	if err := os.WriteFile(in, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if err := Render(&want, "T", reports); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(want.String(), "| relays a message | ✅ | ❌ |") {
		t.Fatalf("unexpected rendering:\n%s", want.String())
	}

	t.Run("to stdout", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"-in", in, "-title", "T"}, &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d, stderr %q", code, stderr.String())
		}
		if stdout.String() != want.String() {
			t.Errorf("stdout:\n%s\nwant:\n%s", stdout.String(), want.String())
		}
	})

	t.Run("to file", func(t *testing.T) {
		out := filepath.Join(dir, "SPECS.md")
		var stdout, stderr bytes.Buffer
		if code := run([]string{"-in", in, "-out", out, "-title", "T"}, &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d, stderr %q", code, stderr.String())
		}
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want.String() || stdout.String() != "specs: 1 passed, 1 failed, 0 skipped\n" {
			t.Errorf("file:\n%s\nstdout %q; want the tally line", got, stdout.String())
		}
	})

	t.Run("default title", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"-in", in}, &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d, stderr %q", code, stderr.String())
		}
		if !strings.HasPrefix(stdout.String(), "# natter behaviour specification\n") {
			t.Errorf("stdout starts %q", stdout.String()[:40])
		}
	})

	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte("[{"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing -in", nil, "specdoc: missing -in report.json\n"},
		{"unknown flag", []string{"-nope"}, "specdoc: flag provided but not defined: -nope\n"},
		{"extra argument", []string{"-in", in, "x"}, "specdoc: unexpected arguments: [\"x\"]\n"},
		{"no such file", []string{"-in", filepath.Join(dir, "none.json")}, "specdoc: open " + filepath.Join(dir, "none.json") + ": no such file or directory\n"},
		{"bad json", []string{"-in", bad}, "specdoc: " + bad + ": unexpected end of JSON input\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, &stdout, &stderr); code != 1 {
				t.Errorf("exit %d, want 1", code)
			}
			if !strings.HasSuffix(stderr.String(), tc.want) {
				t.Errorf("stderr %q, want it to end with %q", stderr.String(), tc.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q, want empty", stdout.String())
			}
		})
	}
}
