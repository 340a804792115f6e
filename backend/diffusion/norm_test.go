package diffusion

import (
	"bytes"
	"context"
	"reflect"
	"testing"

	"reword/models/tiny/scene"
	"reword/shared/edit"
)

// The norm window changes the targets and nothing else: the source image
// is the same with and without it, the target moves, and a source served
// from the cache gives the same edit, heat maps included, bit for bit as
// one denoised afresh. Its unconditional row stays in the batch for the
// window's steps (2(1+E) rows, which the targets' GroupNorms read) and
// only for those: the steps after the window run the cache's 1 + 2E.
func TestNormWindowEdit(t *testing.T) {
	e := loadTiny(t, Options{})
	ctx := context.Background()
	const steps, window = 8, 4 // the window [0, 0.5) of 8 steps: steps 0 to 3
	s := spec(steps, "a green circle")
	heat := RunOptions{NoSourceCache: true, HeatMaps: true}
	plain, err := e.Edit(ctx, s, heat, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Norm = ptr(edit.Fraction(0.5))
	fresh, err := e.Edit(ctx, s, heat, nil)
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
	cached, err := e.Edit(ctx, s, RunOptions{HeatMaps: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := 4*window + 3*(steps-window); !cached.SourceCached || cached.UNetRows != want {
		t.Fatalf("cached edit with a norm window: cached %v, %d rows; want the cached source and %d rows (the source's two kept in the window's %d steps)",
			cached.SourceCached, cached.UNetRows, want, window)
	}
	for r := range fresh.Images {
		if !bytes.Equal(fresh.Images[r].RGB, cached.Images[r].RGB) {
			t.Errorf("row %d differs between the cached and the fresh source", r)
		}
	}
	if len(cached.HeatMaps) == 0 || !reflect.DeepEqual(fresh.HeatMaps, cached.HeatMaps) {
		t.Errorf("the heat maps differ between the cached source (%d) and the fresh one (%d)", len(cached.HeatMaps), len(fresh.HeatMaps))
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

// A spec without a norm window takes the model's default (the tiny
// model's manifest sets 0.4): the same edit as the window set explicitly,
// bit for bit, and another than with the window off.
func TestNormWindowDefault(t *testing.T) {
	e := loadTiny(t, Options{CacheBytes: -1})
	ctx := context.Background()
	const steps = 10
	if got := e.Defaults().Norm; got != edit.Fraction(e.manifest.Defaults.Norm) || got.End <= got.Start {
		t.Fatalf("the tiny model's default norm window is %+v (the manifest says %v); want a window", got, e.manifest.Defaults.Norm)
	}
	// The target row of the edit without a norm window, with the model's
	// default set explicitly, and with the window off.
	var targets [3][]byte
	for i, norm := range []*edit.Window{nil, ptr(e.Defaults().Norm), {}} {
		s := spec(steps, "a green circle")
		s.Norm = norm
		res, err := e.Edit(ctx, s, RunOptions{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		targets[i] = res.Images[1].RGB
	}
	if !bytes.Equal(targets[0], targets[1]) {
		t.Error("the edit without a norm window differs from the one with the model's default set")
	}
	if bytes.Equal(targets[0], targets[2]) {
		t.Error("the edit without a norm window is the one with it off: the default did not apply")
	}
}

// A photo's replayed source (Direct Inversion) keeps both of its rows in
// the batch for the norm window's steps, and stays the reconstruction.
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
	s.Norm = ptr(edit.Fraction(0.5)) // steps 0 to 2 of 6
	normed, err := e.Edit(ctx, s, RunOptions{Photo: &Photo{Data: data}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := 4*3 + 3*3; !normed.SourceCached || normed.UNetRows != want {
		t.Errorf("photo edit with a norm window: cached inversion %v, %d rows; want true and %d", normed.SourceCached, normed.UNetRows, want)
	}
	if !bytes.Equal(normed.Images[0].RGB, rt.RGB) {
		t.Error("with a norm window the source row is not the photo's reconstruction")
	}
	if bytes.Equal(plain.Images[1].RGB, normed.Images[1].RGB) {
		t.Error("the norm window did not change the photo's edit")
	}
}

// The lean call switches in and out wherever the window lies: a window
// that starts late, with a multistep sampler, two targets and a local
// blend, gives from a cached source the edit the fresh source gives, bit
// for bit, heat maps included, with the source's unconditional row only
// in the window's steps.
func TestNormWindowLateCachedMatchesFresh(t *testing.T) {
	e := loadTiny(t, Options{})
	ctx := context.Background()
	const steps = 10 // the window [0.5, 0.8): steps 5 to 7
	s := spec(steps, "a green circle", "a blue circle")
	s.Norm = &edit.Window{Start: 0.5, End: 0.8}
	s.Scheduler = "dpmpp-2m"
	s.Blend = []edit.Blend{{Words: []string{"circle"}}}
	fresh, err := e.Edit(ctx, s, RunOptions{NoSourceCache: true, HeatMaps: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Generate(ctx, GenerateRequest{Prompt: s.Source, Seed: *s.Seed, Steps: steps, Scheduler: s.Scheduler}, RunOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	cached, err := e.Edit(ctx, s, RunOptions{HeatMaps: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := 6*3 + 5*(steps-3); !cached.SourceCached || cached.UNetRows != want {
		t.Fatalf("cached edit: cached %v, %d rows; want the cached source and %d", cached.SourceCached, cached.UNetRows, want)
	}
	for r := range fresh.Images {
		if !bytes.Equal(fresh.Images[r].RGB, cached.Images[r].RGB) {
			t.Errorf("row %d differs between the cached and the fresh source", r)
		}
	}
	if !reflect.DeepEqual(fresh.HeatMaps, cached.HeatMaps) {
		t.Error("the heat maps differ between the cached and the fresh source")
	}
}
