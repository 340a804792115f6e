package diffusion

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"reword/models/tiny/scene"
	"reword/shared/align"
	"reword/shared/clip"
	"reword/shared/edit"
)

// keepSourceText puts the source's state at every position the target
// kept and leaves the swapped word's own, on the tiny encoder's states of
// a real swap (whose context makes the neighbours' states differ too).
func TestKeepSourceTextCopiesKeptPositions(t *testing.T) {
	e := loadTiny(t, Options{CacheBytes: -1})
	source, target := "a red circle on a white background", "a blue circle on a white background"
	states, h, err := e.TextStates(context.Background(), []string{source, target})
	if err != nil {
		t.Fatal(err)
	}
	ctrl, err := align.New(e.tok, align.Config{Source: source, Targets: []string{target}, Steps: 10})
	if err != nil {
		t.Fatal(err)
	}
	from := ctrl.TextSource(0)
	if !slices.Contains(from, -1) {
		t.Fatalf("TextSource keeps every position of a swap: %v", from[:8])
	}
	size := clip.ContextLength * h
	c := condition{hidden: slices.Concat(make([]float32, size), states[0], states[1])} // an unconditional row first
	c.keepSourceText(e, 1, [][]int{from})
	got := c.hidden[2*size:]
	differed := 0
	for n, w := range from {
		own, kept := states[1][n*h:(n+1)*h], got[n*h:(n+1)*h]
		switch {
		case w < 0 && !slices.Equal(kept, own):
			t.Errorf("position %d (a swapped token) lost its own state", n)
		case w >= 0 && !slices.Equal(kept, states[0][w*h:(w+1)*h]):
			t.Errorf("position %d did not take the source's state at %d", n, w)
		case w >= 0 && !slices.Equal(own, kept):
			differed++
		}
	}
	if differed == 0 {
		t.Error("no kept position's state differed between the prompts: the test shows nothing")
	}
	if !slices.Equal(c.hidden[size:2*size], states[0]) || !slices.Equal(c.hidden[:size], make([]float32, size)) {
		t.Error("the source or unconditional row changed")
	}
}

// keep_source_text changes a swap's target and nothing else: the source
// row is the same image, and a target identical to the source (a pure
// reweight) runs exactly as without it.
func TestKeepSourceTextEdit(t *testing.T) {
	e := loadTiny(t, Options{CacheBytes: -1})
	ctx := context.Background()
	s := spec(6, "a blue circle", "a red circle")
	s.Reweights = map[string]float64{"red": 1.5}
	own, err := e.Edit(ctx, s, RunOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.KeepSourceText = true
	kept, err := e.Edit(ctx, s, RunOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(own.Images[0].RGB, kept.Images[0].RGB) {
		t.Error("keep_source_text changed the source row")
	}
	if bytes.Equal(own.Images[1].RGB, kept.Images[1].RGB) {
		t.Error("keep_source_text did not change the swap's target")
	}
	if !bytes.Equal(own.Images[2].RGB, kept.Images[2].RGB) {
		t.Error("keep_source_text changed a target identical to the source")
	}
}

// A photo edit takes the option with every inversion method: the
// reconstruction (the source row) stays the same, the edit changes.
func TestKeepSourceTextPhotoEdit(t *testing.T) {
	e := loadTiny(t, Options{CacheBytes: -1})
	ctx := context.Background()
	data, _, caption := drawnPhoto(t, scene.Blue, scene.Square, scene.Center, 5)
	target := strings.Replace(caption, "blue", "yellow", 1)
	for _, m := range edit.Inversions {
		s := photoSpec(4, caption, m, data, target)
		own, err := e.Edit(ctx, s, RunOptions{Photo: &Photo{Data: data}}, nil)
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		s.KeepSourceText = true
		kept, err := e.Edit(ctx, s, RunOptions{Photo: &Photo{Data: data}}, nil)
		if err != nil {
			t.Fatalf("%s, keep_source_text: %v", m, err)
		}
		if !bytes.Equal(own.Images[0].RGB, kept.Images[0].RGB) {
			t.Errorf("%s: keep_source_text changed the reconstruction", m)
		}
		if bytes.Equal(own.Images[1].RGB, kept.Images[1].RGB) {
			t.Errorf("%s: keep_source_text did not change the edit", m)
		}
	}
}
