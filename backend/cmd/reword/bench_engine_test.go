package main

import (
	"bytes"
	"testing"

	"reword/models/tiny/tinytest"
)

// TestBenchEngineOnTinyModel runs bench engine briefly on the committed
// model: the main table's rows, and the self-replace layers table with one
// row per grid of the tiny model's self-attention layers, each ratio to
// the run without self-replace.
func TestBenchEngineOnTinyModel(t *testing.T) {
	var out, errb bytes.Buffer
	args := []string{"bench", "engine", "-model", tinytest.Private(t), "-threads", "1", "-reps", "1", "-steps", "5"}
	if code := run(args, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	rows := tableRows(out.String())
	for _, want := range [][]string{
		{"generate (1 prompt, 2 rows)", "2"},
		{"edit E=1, P2P, cached source (3 rows)", "3"},
		// The tiny model's norm window, 0.4 of 5 steps: steps 0 and 1.
		{"edit E=1, P2P, norm 0.4 (4 rows)", "4"},
		{"edit E=1, P2P, norm 0.4, cached source (4 rows in the window, 3 after)", "3.4"},
		{"self 0: no layer", "0 of 10"},
		{"self 1, self_max_tokens 16: 4×4 only", "4 of 10"},
		{"self 1, self_max_tokens 64: 8×8 and coarser", "7 of 10"},
		{"self 1, self_max_tokens 256: 16×16 and coarser", "10 of 10"},
	} {
		if !hasRow(rows, want) {
			t.Errorf("no row starting %q:\n%s", want, out.String())
		}
	}
	// The row without self-replace is both ratios' 1, the CPU time measured.
	for _, r := range rows {
		if len(r) > 5 && r[0] == "self 0: no layer" && (r[3] != "1.000" || r[5] != "1.000" || r[2] == "–") {
			t.Errorf("the row without self-replace: %q", r)
		}
	}
	t.Log("\n" + out.String())
}
