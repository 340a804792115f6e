package main

import "testing"

func TestPromptSeedsAreDistinctAndFixed(t *testing.T) {
	seen := map[uint64][2]int{}
	for prompt := 0; prompt < 200; prompt++ {
		for k := 0; k < 3; k++ {
			s := promptSeed(prompt, k)
			if s != promptSeed(prompt, k) {
				t.Fatalf("promptSeed(%d, %d) differs between calls", prompt, k)
			}
			if s >= 1_000_000 {
				t.Errorf("promptSeed(%d, %d) = %d, want below a million", prompt, k, s)
			}
			if o, ok := seen[s]; ok {
				t.Errorf("prompts %d and %d share seed %d (k %d and %d)", o[0], prompt, s, o[1], k)
			}
			seen[s] = [2]int{prompt, k}
		}
	}
}
