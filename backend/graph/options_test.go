package graph_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"reword/backend/graph"
	"reword/backend/graph/internal/attnblock"
	"reword/backend/graph/onnxpb"
)

func TestDefaultOptionsOnSmallLatent(t *testing.T) {
	net, err := attnblock.New(attnblock.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	desc, err := graph.Analyze(net.Model(), graph.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// 8×8 latent: the default limit is 64/16 = 4 queries, below every
	// layer, so no self layer is edited by default (each can be, per run),
	// and local blend reads the maps of the 4×4 (16-query) layer, the
	// coarsest at or above 4.
	if desc.SelfReplaceMaxQueries != 4 {
		t.Errorf("default self-replace limit %d, want 4", desc.SelfReplaceMaxQueries)
	}
	if self, edited := desc.Count(graph.Self); edited != self || len(desc.SelfLayers()) != self {
		t.Errorf("%d of %d self layers switchable (%d listed), want all", edited, self, len(desc.SelfLayers()))
	}
	if w := desc.SelfLayerWeights(desc.SelfReplaceMaxQueries); slices.Contains(w, 1) {
		t.Errorf("default self-layer weights %v, want none on", w)
	}
	if cross, edited := desc.Count(graph.Cross); cross != 3 || edited != 3 {
		t.Errorf("cross layers %d (edited %d), want 3 (3)", cross, edited)
	}
	if len(desc.Maps) != 2 || desc.Maps[0].Name != "p2p_maps_div1" || desc.Maps[0].Resolution != (graph.Size{Height: 8, Width: 8}) || len(desc.Maps[0].Layers) != 2 ||
		desc.Maps[1].Name != "p2p_maps_div2" || desc.Maps[1].Resolution != (graph.Size{Height: 4, Width: 4}) || len(desc.Maps[1].Layers) != 1 {
		t.Errorf("maps %+v; want p2p_maps_div1 (8×8, two layers) and p2p_maps_div2 (4×4, one layer)", desc.Maps)
	}
	if desc.BlendMaps != "p2p_maps_div2" {
		t.Errorf("local blend reads %q, want p2p_maps_div2", desc.BlendMaps)
	}
	var table strings.Builder
	if err := desc.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"/mid_block/attentions.0/transformer_blocks.0/attn2", "per run (> 4 queries: off by default)", "yes (W, c)", "p2p_self_layers [3]", "p2p_maps_div2 [1+E, 16, T] (local blend)", "p2p_maps_div1 [1+E, 64, T]:", "timestep int64"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

func TestSelfReplaceLimitAndMapsChoice(t *testing.T) {
	net, err := attnblock.New(attnblock.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	desc, err := graph.Analyze(net.Model(), graph.Options{SelfReplaceMaxQueries: 16, MapsQueries: 64})
	if err != nil {
		t.Fatal(err)
	}
	w := desc.SelfLayerWeights(desc.SelfReplaceMaxQueries)
	for k, l := range desc.SelfLayers() {
		if on := w[k] == 1; on != (l.Queries <= 16) {
			t.Errorf("self layer %s with %d queries: on by default %v", l.Name, l.Queries, on)
		}
	}
	if desc.BlendMaps != "p2p_maps_div1" || len(desc.Maps) != 2 {
		t.Errorf("local blend reads %q of %+v, want p2p_maps_div1 (the two full-resolution cross layers)", desc.BlendMaps, desc.Maps)
	}
	desc, err = graph.Analyze(net.Model(), graph.Options{SelfReplaceMaxQueries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, edited := desc.Count(graph.Self); edited != 0 || desc.SelfReplaceMaxQueries != 0 {
		t.Errorf("negative limit left %d self layers edited (limit %d)", edited, desc.SelfReplaceMaxQueries)
	}
	if _, err := graph.Analyze(net.Model(), graph.Options{MapsQueries: 20}); err == nil || !strings.Contains(err.Error(), "no cross-attention layer has 20 queries") {
		t.Errorf("unknown maps query count: %v", err)
	}
}

// TestAveragedMapsOverLayers runs a maps output that averages two layers.
func TestAveragedMapsOverLayers(t *testing.T) {
	cfg := attnblock.DefaultConfig()
	cfg.Layout = attnblock.SDPA
	f := newFixture(t, cfg, graph.Options{MapsQueries: 64}, embedded)
	in := randomInputs(cfg, graph.Batch(targets), 3)
	ctl := randomControls(targets, cfg.Tokens, 5)
	_, maps := f.runInstrumented(t, in, ctl)
	ref, err := f.net.Reference(in, &ctl, f.desc.SelfReplaceMaxQueries)
	if err != nil {
		t.Fatal(err)
	}
	checkMaps(t, "two-layer", maps, f.referenceMaps(ref), 1e-5)
}

// TestNoTargets runs plain generation (E = 0, batch 2) through the
// instrumented model.
func TestNoTargets(t *testing.T) {
	cfg := attnblock.DefaultConfig()
	f := newFixture(t, cfg, editAllSelf, embedded)
	in := randomInputs(cfg, graph.Batch(0), 4)
	orig := f.runOriginal(t, in)
	out, maps := f.runInstrumented(t, in, graph.NoOpControls(0, cfg.Tokens))
	bitwiseEqual(t, "E=0 output", out, orig)
	ref, err := f.net.Reference(in, ptr(graph.NoOpControls(0, cfg.Tokens)), 64)
	if err != nil {
		t.Fatal(err)
	}
	checkMaps(t, "E=0", maps, f.referenceMaps(ref), 1e-5)
}

// TestSourceCacheLayout drops the uncond source row (batch 2E+1): the cond
// rows are still the last 1+E.
func TestSourceCacheLayout(t *testing.T) {
	cfg := attnblock.DefaultConfig()
	f := newFixture(t, cfg, editAllSelf, embedded)
	in := randomInputs(cfg, 2*targets+1, 8)
	ctl := randomControls(targets, cfg.Tokens, 9)
	out, maps := f.runInstrumented(t, in, ctl)
	ref, err := f.net.Reference(in, &ctl, 64)
	if err != nil {
		t.Fatal(err)
	}
	d, scale := maxDiff(out, ref.Out)
	if d > 1e-5*scale {
		t.Fatalf("batch 2E+1: output differs from the reference by %.3g", d)
	}
	checkMaps(t, "batch 2E+1", maps, f.referenceMaps(ref), 1e-5)
}

func ptr[T any](v T) *T { return &v }

func TestRefusals(t *testing.T) {
	base := func(t *testing.T, mutate func(*attnblock.Config)) *onnxpb.ModelProto {
		cfg := attnblock.DefaultConfig()
		if mutate != nil {
			mutate(&cfg)
		}
		net, err := attnblock.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return net.Model()
	}
	cases := []struct {
		name   string
		model  func(t *testing.T) *onnxpb.ModelProto
		opts   graph.Options
		target error
		want   string
	}{
		{name: "fused attention", model: func(t *testing.T) *onnxpb.ModelProto {
			m := base(t, nil)
			m.Graph.Node = append(m.Graph.Node, &onnxpb.NodeProto{Name: proto.String("/attn/MultiHeadAttention"), OpType: proto.String("MultiHeadAttention"),
				Domain: proto.String("com.microsoft"), Input: []string{"q", "k", "v"}, Output: []string{"o"}})
			return m
		}, target: graph.ErrFusedAttention, want: "export the UNet without attention fusion"},
		{name: "no cross attention", model: func(t *testing.T) *onnxpb.ModelProto {
			m := base(t, func(c *attnblock.Config) { c.OldNames = true; c.CtxDim = c.Dim })
			return rewireTextToImage(m)
		}, target: graph.ErrNoCrossAttention, want: "nothing to edit"},
		{name: "old opset", model: func(t *testing.T) *onnxpb.ModelProto {
			m := base(t, nil)
			m.OpsetImport[0].Version = proto.Int64(12)
			return m
		}, want: "opset 12"},
		{name: "already instrumented", model: func(t *testing.T) *onnxpb.ModelProto {
			m := base(t, nil)
			if _, err := graph.Instrument(m, graph.Options{}); err != nil {
				t.Fatal(err)
			}
			return m
		}, want: "instrumented already"},
		{name: "dynamic latent without a size", model: func(t *testing.T) *onnxpb.ModelProto {
			return base(t, func(c *attnblock.Config) { c.DynamicSpatial = true })
		}, want: "give the reference latent size"},
		{name: "latent size contradicting the model", model: func(t *testing.T) *onnxpb.ModelProto { return base(t, nil) },
			opts: graph.Options{Latent: graph.Size{Height: 64, Width: 64}}, want: "fixed at 8×8"},
		{name: "not a UNet", model: func(t *testing.T) *onnxpb.ModelProto {
			m := base(t, nil)
			m.Graph.Input[1].Name = proto.String("t")
			return m
		}, want: `no input "timestep"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := c.model(t)
			before, err := proto.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			_, err = graph.Instrument(m, c.opts)
			if err == nil || !strings.Contains(err.Error(), c.want) || (c.target != nil && !errors.Is(err, c.target)) {
				t.Fatalf("got error %v; want one containing %q", err, c.want)
			}
			after, _ := proto.Marshal(m)
			if string(before) != string(after) {
				t.Error("a refused model was changed")
			}
			t.Logf("refused: %v", err)
		})
	}
}

// rewireTextToImage makes every attention read its keys and values from the
// image features, so that no attention depends on encoder_hidden_states.
// attnblock emits each attention's q, k and v projections in a row, so the
// query projection is the last MatMul before a text-reading one.
func rewireTextToImage(m *onnxpb.ModelProto) *onnxpb.ModelProto {
	query := ""
	for _, n := range m.Graph.Node {
		if n.GetOpType() != "MatMul" {
			continue
		}
		if n.Input[0] == "encoder_hidden_states" {
			n.Input[0] = query
		} else {
			query = n.Input[0]
		}
	}
	return m
}

func TestDynamicLatentNeedsSize(t *testing.T) {
	cfg := attnblock.DefaultConfig()
	cfg.DynamicSpatial = true
	net, err := attnblock.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := graph.Analyze(net.Model(), graph.Options{Latent: graph.Size{Height: 64, Width: 64}})
	if err != nil {
		t.Fatal(err)
	}
	if desc.LatentFixed || desc.Layers[2].Resolution != (graph.Size{Height: 32, Width: 32}) || desc.SelfReplaceMaxQueries != 256 {
		t.Errorf("at a 64×64 reference latent: %+v", desc)
	}
}

func TestMissingModelFolder(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ dir, want string }{
		{filepath.Join(dir, "absent"), "does not exist"},
		{dir, "has no unet/model.onnx"},
	} {
		if _, _, err := graph.InstrumentDir(c.dir, graph.Options{}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("InstrumentDir(%s): %v, want %q", c.dir, err, c.want)
		}
	}
	file := filepath.Join(dir, "model.onnx")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := graph.InstrumentDir(file, graph.Options{}); err == nil || !strings.Contains(err.Error(), "is a file") {
		t.Errorf("InstrumentDir(file): %v", err)
	}
}

func TestControlsValidate(t *testing.T) {
	good := graph.NoOpControls(2, 77)
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := graph.NoOpControls(2, 77)
	bad.SelfW[1] = 1.5
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "outside [0, 1]") {
		t.Errorf("self weight 1.5: %v", err)
	}
	short := graph.NoOpControls(2, 77)
	short.CrossW = short.CrossW[:10]
	if err := short.Validate(); err == nil || !strings.Contains(err.Error(), "p2p_cross_w has 10 values") {
		t.Errorf("short W: %v", err)
	}
}

// A file instrumented before layouts were recorded (one maps output, no
// layout in its description) reads back, and CheckLayout refuses it rather
// than letting a reader take its single output for the current set.
func TestOldLayoutIsRefused(t *testing.T) {
	net, err := attnblock.New(attnblock.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	m := net.Model()
	if _, err := graph.Instrument(m, graph.Options{}); err != nil {
		t.Fatal(err)
	}
	old := `{"layers":[],"maps":[{"name":"p2p_maps_div2","stride":2,"resolution":{"height":4,"width":4},"layers":["/mid_block/attentions.0/transformer_blocks.0/attn2"]}],` +
		`"latent":{"height":8,"width":8},"latent_fixed":true,"self_replace_max_queries":4,"tokens":77,"opset":14}`
	for _, p := range m.GetMetadataProps() {
		if p.GetKey() == graph.DescriptionKey {
			p.Value = proto.String(old)
		}
	}
	path := filepath.Join(t.TempDir(), graph.InstrumentedFile)
	if err := attnblock.Save(m, path); err != nil {
		t.Fatal(err)
	}
	desc, err := graph.ReadDescription(path)
	if err != nil {
		t.Fatal(err)
	}
	err = desc.CheckLayout()
	if !errors.Is(err, graph.ErrLayout) || !strings.Contains(err.Error(), "earlier version of Reword") {
		t.Errorf("old description: %v", err)
	}
	desc.Layout = 4
	if err := desc.CheckLayout(); !errors.Is(err, graph.ErrLayout) || !strings.Contains(err.Error(), graph.NormWeightInput) {
		t.Errorf("layout 4: %v; want a refusal naming %s", err, graph.NormWeightInput)
	}
	desc.Layout = 5
	if err := desc.CheckLayout(); !errors.Is(err, graph.ErrLayout) || !strings.Contains(err.Error(), "variance") {
		t.Errorf("layout 5: %v; want a refusal saying its GroupNorm control shares the variance too", err)
	}
	desc.Layout = graph.LayoutVersion + 1
	if err := desc.CheckLayout(); !errors.Is(err, graph.ErrLayout) || !strings.Contains(err.Error(), fmt.Sprintf("layout %d", graph.LayoutVersion+1)) {
		t.Errorf("newer layout: %v", err)
	}
	desc.Layout, desc.BlendMaps = graph.LayoutVersion, "p2p_maps_div8"
	if err := desc.CheckLayout(); !errors.Is(err, graph.ErrLayout) || !strings.Contains(err.Error(), "p2p_maps_div8") {
		t.Errorf("blend output missing: %v", err)
	}
}
