package main

import (
	"strings"
	"testing"

	"reword/models/tiny/scene"
	"reword/shared/clip"
)

// The swap groups list every colour word, then every shape word, each as
// the one CLIP token the captions spell it with.
func TestSwapGroups(t *testing.T) {
	tok, err := clip.New()
	if err != nil {
		t.Fatal(err)
	}
	groups, groupWords, err := swapGroups(tok)
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 2 || len(groups[0]) != len(scene.Colours) || len(groups[1]) != len(scene.Shapes) {
		t.Fatalf("groups %v: want %d colours and %d shapes", groups, len(scene.Colours), len(scene.Shapes))
	}
	var words []string
	for _, c := range scene.Colours {
		words = append(words, c.String())
	}
	for _, s := range scene.Shapes {
		words = append(words, s.String())
	}
	if got := append(append([]string(nil), groupWords[0]...), groupWords[1]...); strings.Join(got, " ") != strings.Join(words, " ") {
		t.Errorf("group words %v, want %v", got, words)
	}
	ids := append(append([]int32(nil), groups[0]...), groups[1]...)
	for i, w := range words {
		// The word inside a caption is the same token as alone.
		enc := tok.Encode("a " + w + " on grass")
		if enc.IDs[2] != ids[i] || enc.Tokens[2] != w+"</w>" {
			t.Errorf("%q: group id %d, in a caption %d (%s)", w, ids[i], enc.IDs[2], enc.Tokens[2])
		}
	}
}
