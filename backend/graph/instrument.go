package graph

import (
	"fmt"
	"math"

	"google.golang.org/protobuf/proto"

	"reword/backend/graph/onnxgraph"
	"reword/backend/graph/onnxpb"
)

// Options choose what Instrument edits. The zero value is the
// Prompt-to-Prompt default for a model with a fixed sample size.
type Options struct {
	// Latent is the reference latent size (height×width in latent
	// positions) at which query counts are computed and reported. Zero
	// means the model's own size; models whose sample input has a dynamic
	// height and width need it (64×64 for 512 px SD 1.x).
	Latent Size
	// SelfReplaceMaxQueries is the default self-replace limit recorded in
	// the description (Description.SelfReplaceMaxQueries): a run edits the
	// self-attention layers with at most this many query positions at
	// Latent unless it feeds SelfLayersInput otherwise. Every self layer
	// gets the switchable edit whatever the limit. Zero means
	// Latent.Positions()/16, i.e. the 16×16 layers and coarser at 512 px,
	// Prompt-to-Prompt's default (PnPInversion uses 32×32: 1024). For the
	// 16×16-latent tiny model that default is 16 positions: its 4×4 layers
	// (down_blocks.2, mid_block, up_blocks.0); its manifest asks for 256,
	// every self-attention layer. Negative: no self layer gets the edit.
	SelfReplaceMaxQueries int
	// MapsQueries selects the maps output local blending reads
	// (Description.BlendMaps): that of the cross-attention layers with
	// exactly this many query positions at Latent. Zero means the layers
	// with the fewest positions that are still at least
	// Latent.Positions()/16 (16×16 at 512 px; 4×4 on the 16×16-latent tiny
	// model). Every cross-attention resolution gets a maps output whatever
	// this says.
	MapsQueries int
}

// Instrument rewrites the UNet in m in place (see the package doc for what
// it adds) and returns what it did; the description is also stored in m's
// metadata under DescriptionKey. On error m is unchanged.
func Instrument(m *onnxpb.ModelProto, opts Options) (*Description, error) {
	a, err := analyze(m, opts.Latent)
	if err != nil {
		return nil, err
	}
	if err := a.plan(opts); err != nil {
		return nil, err
	}
	if err := checkFloat32IO(m.GetGraph()); err != nil {
		return nil, err
	}
	r := newRewriter(a)
	r.rewrite()
	// After the rewrite, whose prelude reads the sample's shape: an fp16
	// export's float16 inputs and outputs become float32 ones, so the
	// engine feeds every model the same way (float32io.go).
	converted, err := Float32IO(m.GetGraph())
	if err != nil {
		return nil, err // checked above: not reached
	}
	a.noteFloat32IO(converted)
	desc := a.desc
	for _, l := range a.layers {
		desc.Layers = append(desc.Layers, l.Layer)
	}
	text, err := desc.marshal()
	if err != nil {
		return nil, fmt.Errorf("encoding the description: %w", err)
	}
	setMetadata(m, DescriptionKey, text)
	return &desc, nil
}

// noteFloat32IO records in the description which of the UNet's own inputs
// and outputs Float32IO converted: those inputs are now fed as float32.
func (a *analysis) noteFloat32IO(converted []string) {
	d := &a.desc
	d.Float16IO = converted
	for _, name := range converted {
		switch name {
		case SampleInput:
			d.SampleType = "float32"
		case TimestepInput:
			d.TimestepType = "float32"
		case HiddenStatesInput:
			d.HiddenStatesType = "float32"
		}
	}
}

// Analyze describes the attention layers of the UNet in m, and what
// Instrument would edit with opts, without changing m.
func Analyze(m *onnxpb.ModelProto, opts Options) (*Description, error) {
	a, err := analyze(m, opts.Latent)
	if err != nil {
		return nil, err
	}
	if err := a.plan(opts); err != nil {
		return nil, err
	}
	desc := a.desc
	for _, l := range a.layers {
		desc.Layers = append(desc.Layers, l.Layer)
	}
	return &desc, nil
}

func setMetadata(m *onnxpb.ModelProto, key, value string) {
	for _, p := range m.GetMetadataProps() {
		if p.GetKey() == key {
			p.Value = proto.String(value)
			return
		}
	}
	m.MetadataProps = append(m.MetadataProps, &onnxpb.StringStringEntryProto{Key: proto.String(key), Value: proto.String(value)})
}

// rewriter splices the edit subgraphs into an analysed model.
type rewriter struct {
	a     *analysis
	g     *onnxpb.GraphProto
	pre   *onnxgraph.Builder
	after map[*onnxpb.NodeProto][]*onnxpb.NodeProto
	inits []*onnxpb.TensorProto

	// Shared tensors computed once in the prelude.
	batch   string // [1] int64: B, rows of the UNet batch
	targets string // [1] int64: E
	srcRow  string // [1] int64: B−E−1, the cond source row
	tgtRow  string // [1] int64: B−E, the first cond target row
	// mmTgtRow is B−max(E,1): ONNX Runtime's MatMul cannot broadcast a
	// batch of 1 against a batch of 0, so with no targets (E = 0) the
	// products run on one row whose result then broadcasts away against
	// the empty target rows (elementwise ops handle that).
	mmTgtRow   string
	tgtIndices string // [E, 1] int64: B−E … B−1, the cond target rows, for ScatterND
	rowsByKeys string // [3] int64: (B, −1, T)
	tokens     string // [1] int64: T
	zero, one  string // [1] int64
	minus2     string // [1] int64: −2
	minus1     string // [1] int64: −1
	end        string // [1] int64: INT64_MAX, "to the end" for Slice
	// Controls reshaped for broadcasting, in float32: the cross edit
	// always runs in float32; the self edit casts its weights to the
	// layer's element type inside its branch.
	crossW, crossC string
	selfW          string // s [E] reshaped to [E,1,1,1]
	// selfActive is bool [L]: whether self layer k runs its edit.
	selfActive string
	// The GroupNorm edit's rows: normRows [2E, 1] int64 are the target
	// rows, uncond then cond, for ScatterND (normRowsFlat: [2E], for
	// Gather); normSourceRows [2] the uncond and cond source rows, whose
	// means alone are computed; normSource [2E] which of the two
	// each target takes them from; normW [2E, 1, 1] float32 its weight g
	// (0 outside the standard layout); normActive bool [1] whether some
	// g > 0.
	normRows, normRowsFlat, normSourceRows, normSource, normW, normActive string
	// crossActive is bool [1]: whether the cross controls change anything
	// (some W ≠ 0 or c ≠ 1); float32 cross layers skip the edit otherwise.
	crossActive string
	oneF        string // float32 [1]: 1
	zeroF       string // float32 [1]: 0
	// maps: output name → per-layer head means, float32 [1+E, N, T].
	maps map[string][]string
	// moved are original nodes that now run inside an inserted If's
	// branches, so the rewritten graph leaves them out.
	moved map[*onnxpb.NodeProto]bool
	// headShapes caches, for a fixed latent, the [B, −1, N, T] shape
	// tensor of the layers with N queries (computed once in the prelude).
	headShapes map[int]string
	// mapsEnd holds, per maps output, where its layers' head means stop
	// taking rows: the batch's end when the run asks for the output
	// (MapsWantedInput), else the first cond row, which leaves them empty.
	mapsEnd map[string]string
}

func newRewriter(a *analysis) *rewriter {
	return &rewriter{
		a:     a,
		g:     a.model.GetGraph(),
		pre:   onnxgraph.NewBuilder(NodeMarker + "prelude/"),
		after: map[*onnxpb.NodeProto][]*onnxpb.NodeProto{},
		maps:  map[string][]string{},
		moved: map[*onnxpb.NodeProto]bool{},
		// headShapes and mapsEnd are filled by prelude.
		headShapes: map[int]string{},
		mapsEnd:    map[string]string{},
	}
}

func (r *rewriter) rewrite() {
	r.addInputs()
	r.prelude()
	selfIndex := 0
	for _, l := range r.a.layers {
		switch {
		case l.Kind == Cross:
			r.editCross(l)
		case l.Edited:
			r.editSelf(l, selfIndex)
			selfIndex++
		}
	}
	for k, n := range r.a.norms {
		r.editNorm(n, k)
	}
	post := onnxgraph.NewBuilder(NodeMarker + "maps/")
	for _, out := range r.a.desc.Maps {
		// The mean over layers of per-layer head means is the mean over all
		// layer×head maps that Prompt-to-Prompt's attention store takes,
		// as long as the layers have equal head counts (they do within one
		// resolution of SD-style UNets). ONNX Runtime's Mean adds its
		// inputs in order and multiplies the sum by 1/n; these Adds and Mul
		// do the same, bit for bit (tested against Mean), in less time:
		// its variadic Mean has no fast path.
		means := r.maps[out.Name]
		sum := means[0]
		for _, m := range means[1:] {
			sum = post.Op("Add", []string{sum, m})
		}
		post.OpTo("Mul", out.Name, []string{sum, post.Float32s("inverse_count", []int64{1}, []float32{1 / float32(len(means))})})
		r.g.Output = append(r.g.Output, onnxgraph.TensorInfo(out.Name, onnxgraph.Float,
			onnxgraph.Symbolic("p2p_cond_rows"), r.queriesDim(out), r.tokensDim()))
	}
	nodes := append([]*onnxpb.NodeProto(nil), r.pre.Nodes()...)
	for _, n := range r.g.GetNode() {
		if !r.moved[n] {
			nodes = append(nodes, n)
		}
		nodes = append(nodes, r.after[n]...)
	}
	nodes = append(nodes, post.Nodes()...)
	r.g.Node = nodes
	r.g.Initializer = append(r.g.Initializer, r.pre.Initializers()...)
	r.g.Initializer = append(r.g.Initializer, r.inits...)
	r.g.Initializer = append(r.g.Initializer, post.Initializers()...)
	r.a.model.ProducerName = proto.String(r.a.model.GetProducerName() + "+reword-p2p")
}

func (r *rewriter) tokensDim() onnxgraph.Dim {
	if t := r.a.desc.Tokens; t > 0 {
		return onnxgraph.Fixed(int64(t))
	}
	return onnxgraph.Symbolic("p2p_tokens")
}

func (r *rewriter) queriesDim(out MapsOutput) onnxgraph.Dim {
	if r.a.desc.LatentFixed {
		return onnxgraph.Fixed(int64(out.Resolution.Positions()))
	}
	return onnxgraph.Symbolic(out.Name + "_queries")
}

// selfLayers counts the self layers that get the switchable edit.
func (a *analysis) selfLayers() int {
	n := 0
	for _, l := range a.layers {
		if l.Kind == Self && l.Edited {
			n++
		}
	}
	return n
}

func (r *rewriter) addInputs() {
	e := onnxgraph.Symbolic("p2p_targets")
	t := r.tokensDim()
	r.g.Input = append(r.g.Input,
		onnxgraph.TensorInfo(CrossWeightsInput, onnxgraph.Float, e, t, t),
		onnxgraph.TensorInfo(CrossKeepInput, onnxgraph.Float, e, t),
		onnxgraph.TensorInfo(SelfWeightInput, onnxgraph.Float, e),
		onnxgraph.TensorInfo(NormWeightInput, onnxgraph.Float, e),
		onnxgraph.TensorInfo(SelfLayersInput, onnxgraph.Float, onnxgraph.Fixed(int64(r.a.selfLayers()))),
		onnxgraph.TensorInfo(MapsWantedInput, onnxgraph.Float, onnxgraph.Fixed(int64(len(r.a.desc.Maps)))))
}

// prelude computes the row bookkeeping and the broadcastable controls once,
// before any layer.
func (r *rewriter) prelude() {
	p := r.pre
	r.zero, r.one = p.Int64s("zero", 0), p.Int64s("one", 1)
	r.minus1, r.minus2 = p.Int64s("minus_one", -1), p.Int64s("minus_two", -2)
	r.end = p.Int64s("end", math.MaxInt64)
	r.batch = p.Op("Slice", []string{p.Op("Shape", []string{SampleInput}), r.zero, r.one, r.zero})
	r.targets = p.Op("Shape", []string{SelfWeightInput})
	r.tgtRow = p.Op("Sub", []string{r.batch, r.targets})
	r.srcRow = p.Op("Sub", []string{r.tgtRow, r.one})
	scalar := p.Int64s("scalar_shape")
	rowRange := p.Op("Range", []string{
		p.Op("Reshape", []string{r.tgtRow, scalar}), p.Op("Reshape", []string{r.batch, scalar}), p.Op("Reshape", []string{r.one, scalar})})
	r.tgtIndices = p.Op("Reshape", []string{rowRange, p.Int64s("index_shape", -1, 1)})
	r.tokens = p.Op("Slice", []string{p.Op("Shape", []string{CrossWeightsInput}), r.minus1, r.end, r.zero})
	r.rowsByKeys = p.Op("Concat", []string{r.batch, r.minus1, r.tokens}, onnxgraph.AttrInt("axis", 0))
	r.oneF = p.Float32s("one_f", []int64{1}, []float32{1})
	r.zeroF = p.Float32s("zero_f", []int64{1}, []float32{0})
	r.preludeControls()
	r.preludeNorm(rowRange, scalar)
	// A head mean of the rows [srcRow, srcRow) is an empty tensor, which
	// costs neither the copy of the cond rows nor the mean.
	for j, out := range r.a.desc.Maps {
		wanted := p.Op("Gather", []string{MapsWantedInput, p.Int64s(fmt.Sprintf("maps_output_%d", j), int64(j))}, onnxgraph.AttrInt("axis", 0))
		asked := p.Op("Greater", []string{wanted, r.zeroF})
		r.mapsEnd[out.Name] = p.Op("Where", []string{asked, r.end, r.srcRow})
	}
	if r.a.desc.LatentFixed {
		for _, l := range r.a.layers {
			if n := l.Queries; l.Maps != "" && r.headShapes[n] == "" {
				r.headShapes[n] = p.Op("Concat", []string{r.batch, r.minus1, p.Int64s("queries", int64(n)), r.tokens}, onnxgraph.AttrInt("axis", 0))
			}
		}
	}
}

// preludeControls reshapes the controls for broadcasting and decides which
// edits run.
func (r *rewriter) preludeControls() {
	p := r.pre
	// c [E,T] → [E,1,T]: broadcast over heads·queries. s [E] → [E,1,1,1]:
	// broadcast over heads, queries and channels.
	cShape := p.Op("Concat", []string{r.targets, r.one, r.tokens}, onnxgraph.AttrInt("axis", 0))
	// W padded with a zero matrix to max(E,1) matrices (see mmTgtRow); for
	// E ≥ 1 this is W itself.
	mmTargets := p.Op("Max", []string{r.targets, r.one})
	r.mmTgtRow = p.Op("Sub", []string{r.batch, mmTargets})
	zeros := p.Op("ConstantOfShape", []string{p.Op("Concat", []string{r.one, r.tokens, r.tokens}, onnxgraph.AttrInt("axis", 0))})
	padded := p.Op("Concat", []string{CrossWeightsInput, zeros}, onnxgraph.AttrInt("axis", 0))
	r.crossW = p.Op("Slice", []string{padded, r.zero, mmTargets, r.zero})
	r.crossC = p.Op("Reshape", []string{CrossKeepInput, cShape})
	r.selfW = p.Op("Reshape", []string{SelfWeightInput, p.Int64s("self_shape", -1, 1, 1, 1)})
	// A self layer runs its edit only when its weight and some target's s
	// are positive: active[k] = layers[k]·max(s, 0) > 0 (the 0 keeps the
	// max defined with no targets).
	sMax := p.Op("ReduceMax", []string{p.Op("Concat", []string{SelfWeightInput, r.zeroF}, onnxgraph.AttrInt("axis", 0))}, onnxgraph.AttrInt("keepdims", 1))
	r.selfActive = p.Op("Greater", []string{p.Op("Mul", []string{SelfLayersInput, sMax}), r.zeroF})
	// The cross edit gives every probability back bit for bit when all of
	// W is 0 and all of c is 1 (editCross), so it runs only when some
	// entry of W or of c − 1 is not 0 (x − 1 = 0 exactly when x = 1; a NaN
	// counts as a change). The appended 0 keeps the minimum defined with
	// no targets, whose empty controls change nothing.
	flat := p.Int64s("flat_shape", -1)
	changes := p.Op("Concat", []string{p.Op("Reshape", []string{CrossWeightsInput, flat}),
		p.Op("Reshape", []string{p.Op("Sub", []string{CrossKeepInput, r.oneF}), flat}), r.zeroF}, onnxgraph.AttrInt("axis", 0))
	unchanged := p.Op("Cast", []string{p.Op("Equal", []string{changes, r.zeroF})}, onnxgraph.AttrInt("to", int64(onnxgraph.Float)))
	allUnchanged := p.Op("ReduceMin", []string{unchanged}, onnxgraph.AttrInt("keepdims", 1))
	r.crossActive = p.Op("Not", []string{p.Op("Cast", []string{allUnchanged}, onnxgraph.AttrInt("to", int64(onnxgraph.Bool)))})
}

// preludeNorm lays out the rows of the GroupNorm edit in the standard
// layout [uncond source, uncond targets 1..E, cond source, cond targets
// 1..E]: condRows are the cond target rows B−E … B−1 ([E]), scalar the
// shape of a scalar.
func (r *rewriter) preludeNorm(condRows, scalar string) {
	p := r.pre
	uncondRows := p.Op("Range", []string{p.Op("Reshape", []string{r.one, scalar}),
		p.Op("Reshape", []string{p.Op("Add", []string{r.targets, r.one}), scalar}), p.Op("Reshape", []string{r.one, scalar})})
	r.normRowsFlat = p.Op("Concat", []string{uncondRows, condRows}, onnxgraph.AttrInt("axis", 0))
	r.normRows = p.Op("Reshape", []string{r.normRowsFlat, p.Int64s("norm_index_shape", -1, 1)})
	// The means are taken of the two source rows only, uncond (row 0)
	// then cond: each uncond target takes the first's, each cond target
	// the second's.
	r.normSourceRows = p.Op("Concat", []string{r.zero, r.srcRow}, onnxgraph.AttrInt("axis", 0))
	r.normSource = p.Op("Concat", []string{p.Op("Expand", []string{r.zero, r.targets}), p.Op("Expand", []string{r.one, r.targets})}, onnxgraph.AttrInt("axis", 0))
	// Only in the standard layout, B = 2(1+E): without the uncond source
	// row (the source-cache layout) the uncond targets have no mean to
	// take, so g is 0 for every row.
	standard := p.Op("Equal", []string{r.batch, p.Op("Mul", []string{p.Op("Add", []string{r.targets, r.one}), p.Int64s("two", 2)})})
	gate := p.Op("Cast", []string{standard}, onnxgraph.AttrInt("to", int64(onnxgraph.Float)))
	g := p.Op("Mul", []string{p.Op("Concat", []string{NormWeightInput, NormWeightInput}, onnxgraph.AttrInt("axis", 0)), gate})
	r.normW = p.Op("Reshape", []string{g, p.Int64s("norm_w_shape", -1, 1, 1)})
	// Some g > 0; the appended 0 keeps the maximum defined with no targets.
	gMax := p.Op("ReduceMax", []string{p.Op("Concat", []string{g, r.zeroF}, onnxgraph.AttrInt("axis", 0))}, onnxgraph.AttrInt("keepdims", 1))
	r.normActive = p.Op("Greater", []string{gMax, r.zeroF})
}

// reroute makes node n write a fresh tensor instead of its output 0 and
// returns the fresh name; the old name is left for the edit to produce, so
// every original consumer reads the edited values.
func reroute(n *onnxpb.NodeProto, layer string) (original, fresh string) {
	original = n.GetOutput()[0]
	fresh = layer + NodeMarker + "unedited_" + n.GetOpType()
	n.Output[0] = fresh
	return original, fresh
}

// editCross splices, after a cross-attention Softmax,
//
//	P_tgt ← P_src·W + P_tgt ⊙ c   (cond target rows only)
//
// viewing P, [B·heads, N, T] or [B, heads, N, T], as [B, heads·N, T].
//
// With neutral controls (W = 0, c = 1) the edit gives every probability
// back bit for bit: P_src·W sums zeros, P_tgt ⊙ 1 is P_tgt, and adding 0
// changes nothing. A float32 layer therefore runs it only when the
// controls change something: the Softmax moves into an If on crossActive
// whose then-branch is the Softmax and the edit and whose else-branch is
// the Softmax alone, which writes the If's output directly (an Identity
// there would copy the probabilities). Either branch computes exactly what
// the always-on edit did, so no output changes, and under neutral controls
// (plain generation, the steps after cross_replace) the layer costs the If
// and nothing else.
//
// A float16 Softmax keeps the always-on edit after it (editCross16).
func (r *rewriter) editCross(l *attention) {
	if r.a.ix.ElemType(l.softmax.GetOutput()[0]) != onnxgraph.Float {
		r.editCross16(l)
		return
	}
	b := onnxgraph.NewBuilder(l.Name + NodeMarker)
	probs := l.softmax.GetOutput()[0]
	t := onnxgraph.NewBuilder(l.Name + ThenMarker)
	raw := t.NamedOp(MovedMarker+"Softmax", "Softmax", l.softmax.GetInput(), l.softmax.GetAttribute()...)
	all, shape := r.crossEdit(t, raw)
	thenOut := []string{t.Op("Reshape", []string{all, shape})}
	e := onnxgraph.NewBuilder(l.Name + ElseMarker)
	elseOut := []string{e.NamedOp(MovedMarker+"Softmax", "Softmax", l.softmax.GetInput(), l.softmax.GetAttribute()...)}
	outs := []string{probs}
	if l.Maps != "" {
		// The head mean is an output of the If, computed in its branches:
		// ONNX Runtime orders nodes by a depth-first walk back from the
		// graph's outputs, which put a head mean computed outside after
		// the whole UNet and kept every layer's probabilities alive until
		// then (a tenth more peak memory at SD 1.5's size), read back
		// from memory instead of cache.
		thenOut = append(thenOut, r.headMean(t, l, thenOut[0], ""))
		elseOut = append(elseOut, r.headMean(e, l, elseOut[0], ""))
		outs = append(outs, l.Name+NodeMarker+"head_mean")
		r.maps[l.Maps] = append(r.maps[l.Maps], outs[1])
	}
	b.Node("If", l.Name+NodeMarker+"cross_edit", []string{r.crossActive}, outs,
		onnxgraph.AttrGraph("then_branch", t.SubgraphOutputs(l.Name+NodeMarker+"then", onnxgraph.Float, thenOut...)),
		onnxgraph.AttrGraph("else_branch", e.SubgraphOutputs(l.Name+NodeMarker+"else", onnxgraph.Float, elseOut...)))
	r.moved[l.softmax] = true
	r.after[l.softmax] = b.Nodes()
	r.inits = append(r.inits, b.Initializers()...)
	r.inits = append(r.inits, t.Initializers()...)
	r.inits = append(r.inits, e.Initializers()...)
}

// editCross16 splices the cross edit after a float16 Softmax, always on.
//
// The edit runs in float32: the probabilities are widened (exactly) and the
// edited ones rounded back. P_src·W sums T products, which float32 keeps
// accurate, and neutral controls give back every probability bit for bit,
// so the rounding back is exact too. It also keeps the no-op exact on ONNX
// Runtime's CPU provider, which has no float16 Softmax or MatMul and drops
// the float16 round trip between them in the original graph: with a
// float32 edit in between it drops it in the instrumented graph as well (a
// float16 edit kept it, and moved outputs by a float16 step). The Softmax
// stays outside any If for the same reason: inside a branch its round trip
// to the outer graph's float16 MatMuls would be kept. So does the head
// mean, which ONNX Runtime may therefore run late and keep the float32
// probabilities alive until then (see editCross): float16 exports are
// for GPUs, where the CPU's memory matters less.
func (r *rewriter) editCross16(l *attention) {
	dt := r.a.ix.ElemType(l.softmax.GetOutput()[0])
	b := onnxgraph.NewBuilder(l.Name + NodeMarker)
	probs, raw := reroute(l.softmax, l.Name)
	all, shape := r.crossEdit(b, b.Op("Cast", []string{raw}, onnxgraph.AttrInt("to", int64(onnxgraph.Float))))
	b.OpTo("Cast", probs, []string{b.Op("Reshape", []string{all, shape})}, onnxgraph.AttrInt("to", int64(dt)))
	if l.Maps != "" {
		r.maps[l.Maps] = append(r.maps[l.Maps], r.headMean(b, l, all, shape))
	}
	r.after[l.softmax] = b.Nodes()
	r.inits = append(r.inits, b.Initializers()...)
}

// crossEdit adds the edit of float32 probabilities raw to b and returns the
// edited ones as [B, heads·N, T] rows, and raw's shape.
func (r *rewriter) crossEdit(b *onnxgraph.Builder, raw string) (all, shape string) {
	shape = b.Op("Shape", []string{raw})
	rows := b.Op("Reshape", []string{raw, r.rowsByKeys})
	src := b.Op("Slice", []string{rows, r.srcRow, r.tgtRow, r.zero})
	targets := b.Op("Slice", []string{rows, r.tgtRow, r.end, r.zero})
	mapped := b.Op("MatMul", []string{src, r.crossW})
	own := b.Op("Mul", []string{targets, r.crossC})
	edited := b.Op("Add", []string{mapped, own})
	// ScatterND writes the edited rows over the target rows: at most one
	// pass over the tensor (Split + Concat took two).
	return b.Op("ScatterND", []string{rows, r.tgtIndices, edited}), shape
}

// headMean averages the cond rows of float32 probabilities x (layer l's, in
// any layout whose rows are the batch's) over heads, giving float32
// [1+E, N, T]. The cond rows are cut out first: ONNX Runtime's ReduceMean
// takes longer over the whole batch than a Slice and the ReduceMean over
// the cond rows. The shape [B, −1, N, T] to view x by head comes from the
// prelude when the latent is fixed, and otherwise takes N from probsShape,
// the shape of the layer's probabilities ([…, N, T]); "" means x's own.
func (r *rewriter) headMean(b *onnxgraph.Builder, l *attention, x, probsShape string) string {
	byHeadShape := r.headShapes[l.Queries]
	if byHeadShape == "" {
		if probsShape == "" {
			probsShape = b.Op("Shape", []string{x})
		}
		queries := b.Op("Slice", []string{probsShape, r.minus2, r.minus1, r.zero})
		byHeadShape = b.Op("Concat", []string{r.batch, r.minus1, queries, r.tokens}, onnxgraph.AttrInt("axis", 0))
	}
	byHead := b.Op("Slice", []string{b.Op("Reshape", []string{x, byHeadShape}), r.srcRow, r.mapsEnd[l.Maps], r.zero})
	return r.reduceMean(b, byHead, 1, false)
}

// editSelf splices, after a self-attention layer's P·V product,
//
//	O_tgt ← s·(P_src·V_tgt) + (1−s)·O_tgt   (cond target rows only)
//
// which equals replacing the target's probabilities by the source's with
// weight s, without copying the [heads, N, N] probabilities. Here s is
// target e's weight times the layer's (SelfLayersInput[k]). The edit sits
// in the then-branch of an If on the layer's selfActive entry, so a layer a
// run leaves out, and every layer under neutral controls, costs no
// product: its else-branch gives O unchanged, bit for bit. In float32 the
// P·V product itself moves into both branches, so that the else-branch
// writes O straight into the If's output instead of copying it (an
// Identity); in float16 it stays outside, where ONNX Runtime's CPU
// provider handles its float16 round trip as in the original graph.
func (r *rewriter) editSelf(l *attention, k int) {
	pv := l.pv
	probs, values := pv.GetInput()[0], pv.GetInput()[1]
	dt := r.a.ix.ElemType(probs)
	b := onnxgraph.NewBuilder(l.Name + NodeMarker)
	index := b.Int64s("self_layer", int64(k))
	active := b.Op("Gather", []string{r.selfActive, index}, onnxgraph.AttrInt("axis", 0))
	t := onnxgraph.NewBuilder(l.Name + ThenMarker)
	e := onnxgraph.NewBuilder(l.Name + ElseMarker)
	out := pv.GetOutput()[0]
	var raw, unchanged string
	if dt == onnxgraph.Float {
		r.moved[pv] = true
		raw = t.NamedOp(MovedMarker+"MatMul", "MatMul", pv.GetInput(), pv.GetAttribute()...)
		unchanged = e.NamedOp(MovedMarker+"MatMul", "MatMul", pv.GetInput(), pv.GetAttribute()...)
	} else {
		_, raw = reroute(pv, l.Name)
		unchanged = e.Op("Identity", []string{raw})
	}
	result := r.selfEdit(t, probs, values, raw, index, dt)
	b.Node("If", l.Name+NodeMarker+"self_replace", []string{active}, []string{out},
		onnxgraph.AttrGraph("then_branch", t.Subgraph(l.Name+NodeMarker+"then", result, dt)),
		onnxgraph.AttrGraph("else_branch", e.Subgraph(l.Name+NodeMarker+"else", unchanged, dt)))
	r.after[pv] = b.Nodes()
	r.inits = append(r.inits, b.Initializers()...)
	r.inits = append(r.inits, t.Initializers()...)
	r.inits = append(r.inits, e.Initializers()...)
}

// selfEdit adds to t the self-replace edit of the attention output raw
// (P·V, element type dt) of self layer index, and returns the edited output.
func (r *rewriter) selfEdit(t *onnxgraph.Builder, probs, values, raw, index string, dt onnxgraph.DataType) string {
	// View P, V and O as [B, heads, rows, cols] whatever the layout.
	byHead := func(x string) (view, shape string) {
		shape = t.Op("Shape", []string{x})
		last2 := t.Op("Slice", []string{shape, r.minus2, r.end, r.zero})
		return t.Op("Concat", []string{r.batch, r.minus1, last2}, onnxgraph.AttrInt("axis", 0)), shape
	}
	pView, _ := byHead(probs)
	vView, vShape := byHead(values)
	p4 := t.Op("Reshape", []string{probs, pView})
	v4 := t.Op("Reshape", []string{values, vView})
	o4 := t.Op("Reshape", []string{raw, vView}) // self attention: O has V's shape
	srcProbs := t.Op("Slice", []string{p4, r.srcRow, r.tgtRow, r.zero})
	tgtValues := t.Op("Slice", []string{v4, r.mmTgtRow, r.end, r.zero})
	replaced := t.Op("MatMul", []string{srcProbs, tgtValues})
	targets := t.Op("Slice", []string{o4, r.tgtRow, r.end, r.zero})
	s := t.Op("Mul", []string{r.selfW, t.Op("Gather", []string{SelfLayersInput, index}, onnxgraph.AttrInt("axis", 0))})
	keep := t.Op("Sub", []string{r.oneF, s})
	if dt != onnxgraph.Float {
		s = t.Op("Cast", []string{s}, onnxgraph.AttrInt("to", int64(dt)))
		keep = t.Op("Cast", []string{keep}, onnxgraph.AttrInt("to", int64(dt)))
	}
	edited := t.Op("Add", []string{
		t.Op("Mul", []string{replaced, s}),
		t.Op("Mul", []string{targets, keep}),
	})
	all := t.Op("ScatterND", []string{o4, r.tgtIndices, edited})
	return t.Op("Reshape", []string{all, vShape})
}

// editNorm splices, after a GroupNorm's InstanceNormalization n (the k-th,
// float32),
//
//	y_tgt ← g·ŷ_tgt + (1−g)·y_tgt,  ŷ_tgt = (x_tgt − μ_src)/√(σ²_tgt + ε)·scale + bias
//
// for the target rows (uncond and cond), each centred on the mean of its
// own source row and scaled by its own variance (per row and group, over
// the group's values); y is the node's own output, which every other row keeps bit
// for bit, and so does a target with g = 0. The node sits in the
// then-branch of an If on normActive with the edit, and alone in its
// else-branch, which writes its output straight into the If's (as in
// editCross).
func (r *rewriter) editNorm(n *onnxpb.NodeProto, k int) {
	// Named as the other edits, so that profiles attribute the branches'
	// nodes (ThenMarker, ElseMarker) and the moved node (MovedMarker).
	name := fmt.Sprintf("%s%s%d", n.GetName(), NormScope, k)
	b := onnxgraph.NewBuilder(name + NodeMarker)
	t := onnxgraph.NewBuilder(name + ThenMarker)
	e := onnxgraph.NewBuilder(name + ElseMarker)
	r.moved[n] = true
	normed := t.NamedOp(MovedMarker+"InstanceNormalization", "InstanceNormalization", n.GetInput(), n.GetAttribute()...)
	unchanged := e.NamedOp(MovedMarker+"InstanceNormalization", "InstanceNormalization", n.GetInput(), n.GetAttribute()...)
	result := r.normEdit(t, n, normed)
	b.Node("If", name+NodeMarker+"norm_share", []string{r.normActive}, []string{n.GetOutput()[0]},
		onnxgraph.AttrGraph("then_branch", t.Subgraph(name+NodeMarker+"then", result, onnxgraph.Float)),
		onnxgraph.AttrGraph("else_branch", e.Subgraph(name+NodeMarker+"else", unchanged, onnxgraph.Float)))
	r.after[n] = b.Nodes()
	r.inits = append(r.inits, b.Initializers()...)
	r.inits = append(r.inits, t.Initializers()...)
	r.inits = append(r.inits, e.Initializers()...)
}

// normEdit adds to t the edit of the target rows of InstanceNormalization
// n, whose own output is normed, and returns the edited output.
func (r *rewriter) normEdit(t *onnxgraph.Builder, n *onnxpb.NodeProto, normed string) string {
	x, scale, bias := n.GetInput()[0], n.GetInput()[1], n.GetInput()[2]
	eps := float32(1e-5) // InstanceNormalization's default
	if a := onnxgraph.Attr(n, "epsilon"); a != nil {
		eps = a.GetF()
	}
	// [B, C, …] viewed as [B, C, values]: 0 copies a dimension.
	byChannel := t.Int64s("by_channel", 0, 0, -1)
	x3 := t.Op("Reshape", []string{x, byChannel})
	sources := t.Op("Gather", []string{x3, r.normSourceRows}, onnxgraph.AttrInt("axis", 0))
	sourceMean := t.Op("Gather", []string{r.reduceMean(t, sources, 2, true), r.normSource}, onnxgraph.AttrInt("axis", 0))
	// Only the source's mean: its variance too (the first form of this
	// control) cost colour swaps across large brightness steps, and the
	// variance alone kept fewer backgrounds than sharing nothing (see
	// the tiny model's README), so each target keeps its own spread.
	rows := t.Op("Gather", []string{x3, r.normRowsFlat}, onnxgraph.AttrInt("axis", 0))
	centred := t.Op("Sub", []string{rows, r.reduceMean(t, rows, 2, true)})
	variance := r.reduceMean(t, t.Op("Mul", []string{centred, centred}), 2, true)
	std := t.Op("Sqrt", []string{t.Op("Add", []string{variance, t.Float32s("epsilon", []int64{1}, []float32{eps})})})
	perChannel := t.Int64s("channel_axis", 1) // scale and bias [C] → [C, 1]
	scaleC := t.Op("Unsqueeze", []string{scale, perChannel})
	biasC := t.Op("Unsqueeze", []string{bias, perChannel})
	shared := t.Op("Add", []string{t.Op("Mul", []string{t.Op("Div", []string{t.Op("Sub", []string{rows, sourceMean}), std}), scaleC}), biasC})
	all := t.Op("Reshape", []string{normed, byChannel})
	own := t.Op("Gather", []string{all, r.normRowsFlat}, onnxgraph.AttrInt("axis", 0))
	// g·ŷ + (1−g)·y is ŷ exactly at g = 1 and y at g = 0 (ŷ is finite).
	edited := t.Op("Add", []string{t.Op("Mul", []string{shared, r.normW}), t.Op("Mul", []string{own, t.Op("Sub", []string{r.oneF, r.normW})})})
	return t.Op("Reshape", []string{t.Op("ScatterND", []string{all, r.normRows, edited}), t.Op("Shape", []string{x})})
}

// reduceMean averages x over one axis, in the form the model's opset takes.
func (r *rewriter) reduceMean(b *onnxgraph.Builder, x string, axis int64, keepDims bool) string {
	keep := int64(0)
	if keepDims {
		keep = 1
	}
	if r.a.opset >= 18 {
		return b.Op("ReduceMean", []string{x, b.Int64s("axis", axis)}, onnxgraph.AttrInt("keepdims", keep))
	}
	return b.Op("ReduceMean", []string{x}, onnxgraph.AttrInts("axes", axis), onnxgraph.AttrInt("keepdims", keep))
}
