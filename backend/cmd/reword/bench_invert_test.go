package main

import (
	"strings"
	"testing"

	"reword/models/tiny/tinytest"
	"reword/shared/edit"
)

// TestBenchInvertStatesItsSettings: the inversion benchmark's first line
// names the blend and decoding its edits ran with, which come from the
// model's defaults (the specs leave them out): on a model that blends on
// the changed words and decodes swaps with the source's statistics it
// says so, and on one without those defaults it says there was no blend.
// Every inversion method gets its row.
func TestBenchInvertStatesItsSettings(t *testing.T) {
	for _, c := range []struct {
		defaults  map[string]any
		want, not []string
	}{
		{map[string]any{"blend_changed": true, "decode_norm": edit.DecodeNormSwaps},
			[]string{"swaps and reweights decoded with the source's GroupNorm statistics, local blend on the changed words;"}, []string{"no local blend"}},
		{map[string]any{"blend_changed": nil, "decode_norm": nil},
			[]string{", no local blend;"}, []string{"decoded with", "local blend on"}},
	} {
		dir := tinytest.Private(t)
		setDefaults(t, dir, c.defaults)
		out := runOK(t, "bench", "invert", "--model", dir, "--threads", "1", "--scenes", "1", "--steps", "2")
		first, _, _ := strings.Cut(out, "\n")
		for _, w := range c.want {
			if !strings.Contains(first, w) {
				t.Errorf("defaults %v: the report opens %q; want it to say %q", c.defaults, first, w)
			}
		}
		for _, n := range c.not {
			if strings.Contains(first, n) {
				t.Errorf("defaults %v: the report opens %q, which says %q", c.defaults, first, n)
			}
		}
		for _, m := range edit.Inversions {
			if !strings.Contains(out, "| "+m+" ") {
				t.Errorf("defaults %v: no row for inversion %s in\n%s", c.defaults, m, out)
			}
		}
	}
}
