package diffusion

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"reword/backend/graph"
	"reword/backend/graph/modelfile"
	"reword/backend/model"
	"reword/models/tiny/tinytest"
	"reword/shared/edit"
)

// tinyWithSelfDefault copies the model folder src (the tiny model's
// layout) with its manifest's self_replace_max_tokens set to limit,
// instruments it and loads it.
func tinyWithSelfDefault(t *testing.T, src, limit string) (*Engine, string) {
	t.Helper()
	dir := t.TempDir()
	if err := tinytest.Copy(src, dir); err != nil {
		t.Fatal(err)
	}
	setSelfDefault(t, dir, limit)
	e, err := Load(dir, Options{Instrument: true, Threads: 1, CacheBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, dir
}

// setSelfDefault sets the self_replace_max_tokens of the tiny model's
// manifest in dir (256 as committed) to limit.
func setSelfDefault(t *testing.T, dir, limit string) {
	t.Helper()
	manifest := filepath.Join(dir, "model.json")
	raw, err := os.ReadFile(manifest)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(raw), `"self_replace_max_tokens": 256`, `"self_replace_max_tokens": `+limit, 1)
	if changed == string(raw) {
		t.Fatal("the tiny model's manifest has no self_replace_max_tokens of 256 to change")
	}
	if err := os.WriteFile(manifest, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The spec's self_max_tokens chooses the self-replace layers of a run on
// the same instrumented UNet: a limit the manifest gives as its default
// runs exactly as the spec asking for it, and a limit covering fewer
// layers changes the target.
func TestSelfMaxTokensPerRun(t *testing.T) {
	ctx := context.Background()
	// Both engines from one copy, so that they share every weight.
	base := t.TempDir()
	if err := tinytest.Copy(tinytest.Dir(t), base); err != nil {
		t.Fatal(err)
	}
	full, err := Load(base, Options{Instrument: true, Threads: 1, CacheBytes: -1}) // manifest default 256: every self layer
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	s := spec(6, "a green circle")
	s.Self = &edit.Window{Start: 0, End: 1}
	def, err := full.Edit(ctx, s, RunOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.SelfMaxTokens = ptr(64) // the 8×8 and 4×4 layers
	fewer, err := full.Edit(ctx, s, RunOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(def.Images[1].RGB, fewer.Images[1].RGB) {
		t.Error("self_max_tokens 64 gave the same target as every layer")
	}
	if !bytes.Equal(def.Images[0].RGB, fewer.Images[0].RGB) {
		t.Error("self_max_tokens changed the source image")
	}

	// The same limit as the manifest's default, on a file instrumented
	// with that default: the same pixels.
	limited, _ := tinyWithSelfDefault(t, base, "64")
	s.SelfMaxTokens = nil
	byDefault, err := limited.Edit(ctx, s, RunOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(byDefault.Images[1].RGB, fewer.Images[1].RGB) {
		t.Error("manifest default 64 and spec self_max_tokens 64 gave different targets")
	}
	s.SelfMaxTokens = ptr(256)
	all, err := limited.Edit(ctx, s, RunOptions{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(all.Images[1].RGB, def.Images[1].RGB) {
		t.Error("self_max_tokens 256 on a model whose default is 64 differs from the default-256 run")
	}

	s.SelfMaxTokens = ptr(0)
	if _, err := full.Edit(ctx, s, RunOptions{}, nil); err == nil || !strings.Contains(err.Error(), "self_max_tokens") {
		t.Errorf("self_max_tokens 0: %v", err)
	}
}

// The default limit: the spec's, else PnPInversion's for a photo on an
// SD-shaped latent, else the manifest's, else the instrumented UNet's.
func TestSelfMaxTokensDefault(t *testing.T) {
	desc := &graph.Description{SelfReplaceMaxQueries: 256}
	e := &Engine{manifest: &model.Manifest{}}
	e.desc = desc
	photo := strings.Repeat("a", 64)
	for _, c := range []struct {
		side, manifest, spec int
		image                string
		want                 int
	}{
		{side: 16, manifest: 256, want: 256},
		{side: 16, manifest: 256, image: photo, want: 256}, // the tiny model: not SD-shaped
		{side: 64, manifest: 0, want: 256},
		{side: 64, manifest: 0, image: photo, want: edit.PhotoSelfMaxTokens},
		{side: 96, manifest: 512, image: photo, want: edit.PhotoSelfMaxTokens},
		{side: 64, manifest: 512, want: 512},
		{side: 64, manifest: 512, spec: 64, image: photo, want: 64},
	} {
		e.manifest.Latent.Height, e.manifest.Latent.Width = c.side, c.side
		e.manifest.Defaults.SelfReplaceMaxTokens = c.manifest
		r := edit.Resolved{SelfMaxTokens: c.spec, Image: c.image}
		if got := e.selfMaxTokens(r); got != c.want {
			t.Errorf("%d×%d latent, manifest %d, spec %d, photo %v: limit %d, want %d", c.side, c.side, c.manifest, c.spec, c.image != "", got, c.want)
		}
	}
}

// Files of earlier layouts are refused with the command to run, and
// instrumented again when Load may write: layout 2 (self-replace layers
// fixed when it was written, no p2p_self_layers input), layout 3 (every
// maps output computed in every run, no p2p_maps_wanted input) and layout
// 4 (no p2p_norm_w input).
func TestOlderLayoutInstrumentedUNet(t *testing.T) {
	for _, old := range []int{2, 3, 4} {
		_, dir := tinyWithSelfDefault(t, tinytest.Dir(t), "64")
		path := filepath.Join(dir, graph.UNetDir, graph.InstrumentedFile)
		m, err := modelfile.Read(path)
		if err != nil {
			t.Fatal(err)
		}
		current := fmt.Sprintf(`"layout":%d`, graph.LayoutVersion)
		replaceDescription(t, m, path, func(d string) string {
			if !strings.Contains(d, current) {
				t.Fatalf("no layout %d description in the instrumented file", graph.LayoutVersion)
			}
			return strings.Replace(d, current, fmt.Sprintf(`"layout":%d`, old), 1)
		})
		_, err = Load(dir, Options{Threads: 1})
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("layout %d", old)) || !strings.Contains(err.Error(), "reword instrument -self-max-queries 64") {
			t.Fatalf("layout-%d instrumented UNet: %v", old, err)
		}
		t.Logf("refused: %v", err)
		e, err := Load(dir, Options{Instrument: true, Threads: 1})
		if err != nil {
			t.Fatal(err)
		}
		e.Close()
		desc, err := graph.ReadDescription(path)
		if err != nil || desc.CheckLayout() != nil || desc.SelfReplaceMaxQueries != 64 {
			t.Errorf("re-instrumented file: %v, %v, default limit %d", err, desc.CheckLayout(), desc.SelfReplaceMaxQueries)
		}
	}
}

// A manifest whose default limit changed still loads its instrumented UNet
// as it is (the layers are a run's choice), and runs take the new default.
func TestManifestSelfDefaultNeedsNoInstrumenting(t *testing.T) {
	dir := t.TempDir()
	if err := tinytest.Copy(tinytest.Dir(t), dir); err != nil {
		t.Fatal(err)
	}
	e, err := Load(dir, Options{Instrument: true, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	setSelfDefault(t, dir, "64")
	e, err = Load(dir, Options{Threads: 1}) // may not instrument
	if err != nil {
		t.Fatalf("changed manifest default: %v", err)
	}
	defer e.Close()
	if e.desc.SelfReplaceMaxQueries != 256 || e.selfMaxTokens(edit.Resolved{}) != 64 {
		t.Errorf("file default %d, run default %d; want 256 and 64", e.desc.SelfReplaceMaxQueries, e.selfMaxTokens(edit.Resolved{}))
	}
	// The defaults a client is told follow the manifest, with the tiny
	// model's layers: 4 at 4×4, 3 at 8×8, 3 at 16×16.
	d := e.Defaults()
	want := []edit.SelfLayerGroup{{Grid: edit.Size{Width: 4, Height: 4}, Layers: 4}, {Grid: edit.Size{Width: 8, Height: 8}, Layers: 3}, {Grid: edit.Size{Width: 16, Height: 16}, Layers: 3}}
	if !slices.Equal(d.SelfLayers, want) || d.SelfMaxTokens != 64 || d.PhotoSelfMaxTokens != 64 {
		t.Errorf("defaults: layers %v, limits %d and %d (photo); want %v, 64 and 64", d.SelfLayers, d.SelfMaxTokens, d.PhotoSelfMaxTokens, want)
	}
}

// A client is told the self-attention layers by grid, coarsest first, and
// the default limits of both kinds of run, as selfMaxTokens applies them.
func TestDefaultsDescribeSelfLayers(t *testing.T) {
	layer := func(kind graph.Kind, side int, edited bool) graph.Layer {
		return graph.Layer{Kind: kind, Resolution: graph.Size{Height: side, Width: side}, Queries: side * side, Edited: edited}
	}
	// An SD-1.5-shaped UNet at 512 px: 64×64 down to 8×8, cross layers
	// and a self layer instrumented without the edit left out.
	desc := &graph.Description{SelfReplaceMaxQueries: 256, Layers: []graph.Layer{
		layer(graph.Self, 64, true), layer(graph.Cross, 64, true), layer(graph.Self, 64, true), layer(graph.Self, 32, true),
		layer(graph.Self, 16, true), layer(graph.Self, 8, true), layer(graph.Self, 8, false), layer(graph.Cross, 8, true),
	}}
	e := &Engine{manifest: &model.Manifest{}}
	e.desc = desc
	e.manifest.Latent.Height, e.manifest.Latent.Width = 64, 64
	var d edit.Defaults
	e.describeSelfLayers(&d)
	want := []edit.SelfLayerGroup{{Grid: edit.Size{Width: 8, Height: 8}, Layers: 1}, {Grid: edit.Size{Width: 16, Height: 16}, Layers: 1},
		{Grid: edit.Size{Width: 32, Height: 32}, Layers: 1}, {Grid: edit.Size{Width: 64, Height: 64}, Layers: 2}}
	if !slices.Equal(d.SelfLayers, want) || d.SelfMaxTokens != 256 || d.PhotoSelfMaxTokens != edit.PhotoSelfMaxTokens {
		t.Errorf("layers %v, limits %d and %d (photo); want %v, 256 and %d", d.SelfLayers, d.SelfMaxTokens, d.PhotoSelfMaxTokens, want, edit.PhotoSelfMaxTokens)
	}
	if n, of, words := d.SelfLayersWithin(d.PhotoSelfMaxTokens); n != 3 || of != 5 || words != "32×32 and coarser" {
		t.Errorf("the photo default takes %d of %d layers, %q", n, of, words)
	}
}
