package main

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"reword/backend/graph"
	"reword/models/tiny/tinytest"
)

func TestInstrumentCommand(t *testing.T) {
	dir := tinytest.Private(t)
	written := filepath.Join(dir, graph.UNetDir, graph.InstrumentedFile)

	var out, errb bytes.Buffer
	if code := run([]string{"instrument", "-dry-run", dir}, &out, &errb); code != 0 {
		t.Fatalf("dry run: exit %d, stderr %s", code, errb.String())
	}
	if _, err := os.Stat(written); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("-dry-run wrote %s", written)
	}

	out.Reset()
	if code := run([]string{"instrument", "-self-max-queries", "64", dir}, &out, &errb); code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errb.String())
	}
	for _, want := range []string{"/mid_block/attentions.0/transformer_blocks.0/attn2", "yes (self-replace)", "p2p_maps_div4", "timestep float32", "wrote " + written} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	desc, err := graph.ReadDescription(written)
	if err != nil {
		t.Fatal(err)
	}
	if desc.SelfReplaceMaxQueries != 64 {
		t.Errorf("-self-max-queries 64 gave a limit of %d", desc.SelfReplaceMaxQueries)
	}
}

func TestInstrumentCommandErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"instrument"}, 2, "give exactly one model folder"},
		{[]string{"instrument", "-latent", "64y", "x"}, 2, "not a size like 64x64"},
		{[]string{"instrument", "-self-max-queries", "-3", "x"}, 2, "-self-max-queries must be"},
		{[]string{"instrument", filepath.Join(t.TempDir(), "nowhere")}, 1, "does not exist"},
		{[]string{"instrument", t.TempDir()}, 1, "has no unet/model.onnx"},
	} {
		var out, errb bytes.Buffer
		if code := run(c.args, &out, &errb); code != c.code || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and %q", c.args, code, errb.String(), c.code, c.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]graph.Size{"64x64": {Height: 64, Width: 64}, "96×80": {Height: 96, Width: 80}, "32": {Height: 32, Width: 32}} {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "0x4", "4x4x4", "ax4"} {
		if _, err := parseSize(bad); err == nil {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
}

// TestBenchInstrumentRefusesBadFlags checks the flags' errors name what is
// allowed.
func TestBenchInstrumentRefusesBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-maps", "some"}, `-maps: unknown choice "some" (use none, heat or all)`},
		{[]string{"-controls", "off"}, `-controls: unknown controls "off"`},
		{[]string{"-reps", "1"}, "-reps ≥ 3"},
	} {
		var out, errb bytes.Buffer
		if code := run(append([]string{"bench", "instrument"}, c.args...), &out, &errb); code != 2 || !strings.Contains(errb.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", c.args, code, errb.String(), c.want)
		}
	}
}

// TestBenchInstrumentReports runs the benchmark briefly (edit controls, so
// that the profile has the edit's nodes); it checks the report is complete,
// not the timing.
func TestBenchInstrumentReports(t *testing.T) {
	dir := tinytest.Private(t)
	var out, errb bytes.Buffer
	code := run([]string{"bench", "instrument", "-model", dir, "-unets", "unet", "-reps", "3", "-profile-runs", "2",
		"-controls", "edit", "-memory-runs", "1", "-maps", "heat"}, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errb.String())
	}
	for _, want := range []string{"attention maps asked: heat", "ratio instrumented/original: median", "of which inserted nodes", "ScatterND", "cross-attention layers",
		"peak memory, with ONNX Runtime's CPU memory arena", "peak memory, without the CPU memory arena", "ratio instrumented/original while running"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
}
