package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestHelpListsSubcommands(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"--help"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, name := range []string{"serve", "tokenize", "generate", "edit", "invert", "instrument", "bench", "link"} {
		if !strings.Contains(out.String(), "  "+name+" ") {
			t.Errorf("--help does not list %s:\n%s", name, out.String())
		}
	}
}

func TestUnknownSubcommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"frobnicate"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `unknown subcommand "frobnicate"`) {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
}

func TestServeRejectsStrayArguments(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"serve", "extra"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "unexpected arguments") {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
}

func TestBenchNeedsAName(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"bench"}, &out, &errb); code != 2 {
		t.Errorf("exit %d", code)
	}
	if code := run([]string{"bench", "nope"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), `unknown benchmark "nope"`) {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
}
