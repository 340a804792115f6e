package diffusion

import (
	"bytes"
	"context"
	"testing"

	"reword/models/tiny/scene"
	"reword/shared/edit"
)

// The norm window changes the targets and nothing else: the source image
// is the same with and without it, the target moves, and a source served
// from the cache gives the same edit bit for bit as one denoised afresh
// (its unconditional row stays in the batch, 2(1+E) rows a step, which
// the targets' GroupNorms read).
func TestNormWindowEdit(t *testing.T) {
	e := loadTiny(t, Options{})
	ctx := context.Background()
	const steps = 8
	s := spec(steps, "a green circle")
	plain, err := e.Edit(ctx, s, RunOptions{NoSourceCache: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Norm = ptr(edit.Fraction(0.5))
	fresh, err := e.Edit(ctx, s, RunOptions{NoSourceCache: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(plain.Images[0].RGB, fresh.Images[0].RGB) {
		t.Error("the norm window changed the source image")
	}
	if bytes.Equal(plain.Images[1].RGB, fresh.Images[1].RGB) {
		t.Error("the norm window did not change the target")
	}
	if _, err := e.Generate(ctx, GenerateRequest{Prompt: s.Source, Seed: *s.Seed, Steps: steps}, RunOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	cached, err := e.Edit(ctx, s, RunOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !cached.SourceCached || cached.UNetRows != 4*steps {
		t.Fatalf("cached edit with a norm window: cached %v, %d rows; want the cached source and %d rows (the source's two kept)",
			cached.SourceCached, cached.UNetRows, 4*steps)
	}
	for r := range fresh.Images {
		if !bytes.Equal(fresh.Images[r].RGB, cached.Images[r].RGB) {
			t.Errorf("row %d differs between the cached and the fresh source", r)
		}
	}
	// The baseline has no control: the window is not applied and the
	// cached source's unconditional row is not needed.
	base, err := e.Edit(ctx, s, RunOptions{Baseline: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if base.UNetRows != 3*steps {
		t.Errorf("baseline with a norm window: %d rows, want %d", base.UNetRows, 3*steps)
	}
}

// A photo's replayed source (Direct Inversion) keeps both of its rows in
// the batch for the norm window, and stays the reconstruction.
func TestNormWindowPhotoEdit(t *testing.T) {
	e := loadTiny(t, Options{})
	ctx := context.Background()
	const steps = 6
	data, _, caption := drawnPhoto(t, scene.Red, scene.Circle, scene.Left, 3)
	rt, err := e.RoundTrip(ctx, Photo{Data: data})
	if err != nil {
		t.Fatal(err)
	}
	s := photoSpec(steps, caption, edit.InversionDirect, data, "a green circle on the left")
	plain, err := e.Edit(ctx, s, RunOptions{Photo: &Photo{Data: data}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Norm = ptr(edit.Fraction(1))
	normed, err := e.Edit(ctx, s, RunOptions{Photo: &Photo{Data: data}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !normed.SourceCached || normed.UNetRows != 4*steps {
		t.Errorf("photo edit with a norm window: cached inversion %v, %d rows; want true and %d", normed.SourceCached, normed.UNetRows, 4*steps)
	}
	if !bytes.Equal(normed.Images[0].RGB, rt.RGB) {
		t.Error("with a norm window the source row is not the photo's reconstruction")
	}
	if bytes.Equal(plain.Images[1].RGB, normed.Images[1].RGB) {
		t.Error("the norm window did not change the photo's edit")
	}
}
