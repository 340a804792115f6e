package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestGenerateChecksBeforeTheModel: generate checks its flags and its
// --out file before the model loads (the model folder here does not
// exist, so reaching it would be another error): it never overwrites a
// file, and a --guidance out of range is an error, not the model's
// default.
func TestGenerateChecksBeforeTheModel(t *testing.T) {
	noModel := filepath.Join(t.TempDir(), "no-model")
	dir := t.TempDir()
	existing := filepath.Join(dir, "earlier.png")
	must(t, os.WriteFile(existing, []byte("earlier"), 0o644))
	fresh := filepath.Join(dir, "new.png")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--out", existing}, "--out " + existing + " already exists: name a new file"},
		{[]string{"--out", dir}, "--out " + dir + " is a folder: name the PNG file to write"},
		{[]string{"--out", filepath.Join(dir, "missing", "x.png")}, "the folder " + filepath.Join(dir, "missing") + " does not exist"},
		{[]string{"--out", fresh, "--guidance", "-1"}, "--guidance -1: want a scale from 0 to 30 (leave it out for the model's default)"},
		{[]string{"--out", fresh, "--guidance", "NaN"}, "--guidance NaN: want a scale"},
		{[]string{"--out", fresh, "--guidance", "31"}, "--guidance 31: want a scale"},
		{[]string{"--out", fresh, "--guidance", "high"}, `"high" is not a number`},
		{[]string{"--out", fresh, "--steps", "151"}, "--steps 151: want 1 to 150 diffusion steps (0 or left out: the model's default)"},
		{[]string{"--out", fresh, "--scheduler", "euler"}, `--scheduler "euler": want one of ddim`},
		{[]string{"--out", fresh, "--negative", strings.Repeat("x", 3000)}, "negative is too long"},
	} {
		args := append([]string{"generate", "--model", noModel, "--prompt", "a red circle", "--seed", "1"}, c.args...)
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 and %q", c.args, code, stderr.String(), c.want)
		}
	}
	if b, err := os.ReadFile(existing); err != nil || string(b) != "earlier" {
		t.Errorf("the earlier file is now %q (%v)", b, err)
	}
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Errorf("a refused run left %s: %v", fresh, err)
	}
}
