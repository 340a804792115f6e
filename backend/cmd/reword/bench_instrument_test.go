package main

import (
	"fmt"
	"strings"
	"testing"

	"reword/backend/graph"
	"reword/backend/graph/onnxgraph"
	"reword/backend/internal/sdtest"
)

// `reword bench instrument -separate` on an SDXL-shaped export laid out as
// the full-size one (weights in model.onnx_data, a fixed latent; its lowest
// blocks 2 transformer blocks deep instead of 10): the inputs come from the
// graph's declarations, text_embeds and time_ids included, each model runs
// in a process of its own, and the report has every kind of controls and
// the peak memory of those processes.
func TestBenchInstrumentSeparateOnSDXLShapedExport(t *testing.T) {
	c := sdtest.Small(sdtest.SDXL)
	c.Depth = []int{1, 2, 2}
	c.FixedLatent, c.ExternalData = true, true
	model := t.TempDir()
	if err := sdtest.Write(model, c); err != nil {
		t.Fatal(err)
	}
	out := runOK(t, "bench", "instrument", "-model", model, "-unets", "unet", "-reps", "3", "-profile-runs", "0",
		"-memory-runs", "0", "-separate", "-maps", "all", "-controls", "neutral,edit,norm")
	for _, want := range []string{"neutral controls, 1 process(es) per model, 3 runs each after 2 warm-up runs", "edit controls, 1 process(es) per model",
		"norm controls, 1 process(es) per model",
		"ratio instrumented/original: ", "peak memory, with ONNX Runtime's CPU memory arena", "instrumented, edit    controls   running"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

// The benchmark sizes each input from its declaration: a dynamic first
// dimension is the batch, the sample's dynamic height and width the
// reference latent, the text states' dynamic length the token count; any
// other dynamic dimension is refused by name.
func TestBenchInputShapes(t *testing.T) {
	desc := &graph.Description{Latent: graph.Size{Height: 12, Width: 16}}
	f := newBenchFeeds(desc, 2, mapsNone)
	dyn, fixed := onnxgraph.Symbolic, onnxgraph.Fixed
	for _, c := range []struct {
		in   benchInput
		want string
	}{
		{benchInput{name: graph.SampleInput, dims: []onnxgraph.Dim{dyn("batch"), fixed(4), dyn("h"), dyn("w")}}, "[6 4 12 16]"},
		{benchInput{name: graph.HiddenStatesInput, dims: []onnxgraph.Dim{dyn("batch"), dyn("seq"), fixed(2048)}}, "[6 77 2048]"},
		{benchInput{name: "time_ids", dims: []onnxgraph.Dim{dyn("batch"), fixed(6)}}, "[6 6]"},
		{benchInput{name: graph.TimestepInput, dims: []onnxgraph.Dim{dyn("steps")}}, "[6]"},
	} {
		got, err := f.shape(c.in)
		if err != nil || fmt.Sprint(got) != c.want {
			t.Errorf("%s: %v, %v; want %s", c.in.name, got, err, c.want)
		}
	}
	_, err := f.shape(benchInput{name: "text_embeds", dims: []onnxgraph.Dim{dyn("batch"), dyn("width")}})
	if err == nil || !strings.Contains(err.Error(), `text_embeds: dimension 1 ("width") is dynamic`) {
		t.Errorf("a dynamic width: %v", err)
	}
}

// A profile's totals count a node inside an inserted If once, within the
// If; the copies of the original Softmax, P·V MatMul and
// InstanceNormalization that the branches compute are the original
// graph's work, not the edit's, and "If" keeps only the If nodes' own
// time.
func TestProfileCountsBranchesOnce(t *testing.T) {
	desc := &graph.Description{Layers: []graph.Layer{{Name: "/a/attn2", Kind: graph.Cross}, {Name: "/a/attn1", Kind: graph.Self}}}
	ev := func(name, op string, dur int64) profileEvent {
		e := profileEvent{Cat: "Node", Name: name + "_kernel_time", Dur: dur}
		e.Args.Op = op
		return e
	}
	events := []profileEvent{
		{Cat: "Session", Name: "model_run"},
		ev("/a/conv", "Conv", 100),
		ev("/p2p/prelude/Shape_1", "Shape", 2),
		ev("/a/attn2/p2p/cross_edit", "If", 50),
		ev("/a/attn2"+graph.ElseMarker+graph.MovedMarker+"Softmax_1", "Softmax", 40),
		ev("/a/attn2/p2p/ReduceMean_2", "ReduceMean", 5),
		ev("/a/attn1/p2p/self_replace", "If", 30),
		ev("/a/attn1"+graph.ThenMarker+graph.MovedMarker+"MatMul_1", "MatMul", 10),
		ev("/a/attn1"+graph.ThenMarker+"ScatterND_9", "ScatterND", 12),
		ev("/a/norm/InstanceNormalization"+graph.NormScope+"0"+graph.NodeMarker+"norm_share", "If", 20),
		ev("/a/norm/InstanceNormalization"+graph.NormScope+"0"+graph.ElseMarker+graph.MovedMarker+"InstanceNormalization_1", "InstanceNormalization", 15),
	}
	p := &ortProfile{byOp: map[string]int64{}, nodesByOp: map[string]int{}, byPart: map[string]int64{}}
	p.add(events, desc)
	if p.runs != 1 || p.total != 100+2+50+5+30+20 || p.inserted != 2+(50-40)+5+(30-10)+(20-15) {
		t.Errorf("runs %d, total %d µs, inserted %d µs; want 1, 207, 42", p.runs, p.total, p.inserted)
	}
	if p.byOp["If"] != 50-40+30-10-12+20-15 || p.byOp["ScatterND"] != 12 || p.byOp["Softmax"] != 0 || p.byOp["MatMul"] != 0 || p.byOp["InstanceNormalization"] != 0 {
		t.Errorf("by op %v; want If 23 (the Ifs' own time), ScatterND 12, no Softmax, MatMul or InstanceNormalization", p.byOp)
	}
	if p.byPart["self-replace layers"] != 30-10 || p.byPart["cross-attention layers (edit and head means)"] != 50-40+5 ||
		p.byPart["prelude and maps output"] != 2 || p.byPart["GroupNorms (norm control)"] != 20-15 {
		t.Errorf("by part %v", p.byPart)
	}
}

// Skipping a process's warm-up runs drops their node events, which ONNX
// Runtime writes before each run's model_run event.
func TestProfileSkipsWarmupRuns(t *testing.T) {
	node := func(dur int64) profileEvent {
		e := profileEvent{Cat: "Node", Name: "/a/conv_kernel_time", Dur: dur}
		e.Args.Op = "Conv"
		return e
	}
	run := profileEvent{Cat: "Session", Name: "model_run"}
	events := []profileEvent{node(900), run, node(100), run, node(110), run}
	p := &ortProfile{byOp: map[string]int64{}, nodesByOp: map[string]int{}, byPart: map[string]int64{}}
	p.add(skipRuns(events, 1), &graph.Description{})
	if p.runs != 2 || p.total != 210 {
		t.Errorf("after skipping one run: %d runs, %d µs; want 2 and 210", p.runs, p.total)
	}
	if got := skipRuns(events, 3); len(got) != 0 {
		t.Errorf("skipping every run left %d events", len(got))
	}
}

// Each kind of controls feeds what it says: the neutral ones change
// nothing, the edit ones every target's cross and self attention but not
// its GroupNorms, the norm ones those too.
func TestBenchControls(t *testing.T) {
	desc := &graph.Description{Latent: graph.Size{Height: 4, Width: 4}}
	f := newBenchFeeds(desc, 2, mapsNone)
	for kind, want := range map[string][2]float32{neutralControls: {0, 0}, editControls: {1, 0}, normControls: {1, 1}} {
		ctl, _ := f.controls(kind)
		if err := ctl.Validate(); err != nil {
			t.Errorf("%s: %v", kind, err)
		}
		for e := range ctl.Targets {
			if ctl.SelfW[e] != want[0] || ctl.NormW[e] != want[1] {
				t.Errorf("%s controls, target %d: s = %v, g = %v; want %v and %v", kind, e, ctl.SelfW[e], ctl.NormW[e], want[0], want[1])
			}
		}
	}
	if _, err := parseControlKinds("neutral,norm"); err != nil {
		t.Errorf("neutral,norm: %v", err)
	}
	if _, err := parseControlKinds("fast"); err == nil || !strings.Contains(err.Error(), "norm") {
		t.Errorf("an unknown kind: %v; want an error listing the kinds", err)
	}
}
