package diffusion

import (
	"bytes"
	"context"
	"testing"

	"reword/shared/edit"
)

// decode_norm "source" changes how the targets decode and nothing else:
// the source image is the same bytes as without it (and as its cached
// copy), the same latents are decoded (a target equal to the source
// decodes to the source's image), and a blended colour swap keeps more of
// the source's pixels outside the object than with each image's own
// statistics, whose decoder reads the whole image.
func TestDecodeNormSource(t *testing.T) {
	e := loadTiny(t, Options{})
	ctx := context.Background()
	on := true
	s := spec(10, "a blue circle", "a red circle")
	s.BlendChanged = &on
	s.DecodeNorm = edit.DecodeNormOwn // whatever the model's default
	own, err := e.Edit(ctx, s, RunOptions{NoSourceCache: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.DecodeNorm = edit.DecodeNormSource
	shared, err := e.Edit(ctx, s, RunOptions{NoSourceCache: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(own.Images[0].RGB, shared.Images[0].RGB) {
		t.Error("decode_norm source changed the source image")
	}
	if diff := maxByteDiff(shared.Images[2].RGB, shared.Images[0].RGB); diff > 1 {
		t.Errorf("a target that is the source prompt decodes %d levels away from the source", diff)
	}
	if bytes.Equal(own.Images[1].RGB, shared.Images[1].RGB) {
		t.Error("decode_norm source left the colour swap's target as it was")
	}
	// Pixels that stay within 2 levels of the source: the blend keeps the
	// background's latent, and only the source's statistics decode it so.
	kept := func(r *Result) (n int) {
		for i, v := range r.Images[1].RGB {
			if d := int(v) - int(r.Images[0].RGB[i]); d >= -2 && d <= 2 {
				n++
			}
		}
		return n
	}
	if k, ko := kept(shared), kept(own); k <= ko {
		t.Errorf("the blended swap keeps %d source values with the source's statistics, %d with its own; want more", k, ko)
	}
	// A source served from the cache gives the same edit.
	if _, err := e.Generate(ctx, GenerateRequest{Prompt: s.Source, Seed: *s.Seed, Steps: 10}, RunOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	cached, err := e.Edit(ctx, s, RunOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !cached.SourceCached {
		t.Fatal("the edit after the generation did not take the cached source")
	}
	for r := range shared.Images {
		if !bytes.Equal(shared.Images[r].RGB, cached.Images[r].RGB) {
			t.Errorf("row %d differs between the cached and the fresh source", r)
		}
	}
}

// decode_norm "swaps" decodes the word swaps and reweights with the
// source's statistics and the targets that add words with their own: each
// target as "source" or "own" decodes it.
func TestDecodeNormSwaps(t *testing.T) {
	e := loadTiny(t, Options{CacheBytes: -1})
	ctx := context.Background()
	s := spec(6, "a blue circle", "a red circle on grass", "a red circle")
	run := func(decodeNorm string) *Result {
		t.Helper()
		s.DecodeNorm = decodeNorm
		res, err := e.Edit(ctx, s, RunOptions{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	own, source, swaps := run(edit.DecodeNormOwn), run(edit.DecodeNormSource), run(edit.DecodeNormSwaps)
	for row, want := range map[int]*Result{0: own, 1: source, 2: own, 3: source} {
		if !bytes.Equal(swaps.Images[row].RGB, want.Images[row].RGB) {
			t.Errorf("row %d (%q) with decode_norm swaps is not decoded as with %s", row, swaps.Images[row].Prompt, map[*Result]string{own: "own", source: "source"}[want])
		}
	}
	if bytes.Equal(own.Images[1].RGB, source.Images[1].RGB) || bytes.Equal(own.Images[2].RGB, source.Images[2].RGB) {
		t.Error("the source's statistics decoded a target as its own do: the test cannot tell them apart")
	}
}

func maxByteDiff(a, b []byte) (d int) {
	for i := range a {
		d = max(d, max(int(a[i])-int(b[i]), int(b[i])-int(a[i])))
	}
	return d
}
