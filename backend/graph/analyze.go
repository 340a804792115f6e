package graph

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"reword/backend/graph/onnxgraph"
	"reword/backend/graph/onnxpb"
)

// minOpset is the oldest opset whose Softmax normalizes one axis (older ones
// flatten trailing axes) and whose Split takes sizes as an input.
const minOpset = 13

// fusedAttentionOps are the ops that optimized exports (ONNX Runtime's
// transformer optimizer, Olive, Optimum O2+) and opset 23 fuse attention
// into: no Softmax is left to instrument.
var fusedAttentionOps = map[string]bool{
	"Attention": true, "MultiHeadAttention": true, "GroupQueryAttention": true,
	"PackedAttention": true, "PackedMultiHeadAttention": true, "QAttention": true,
	"DecoderMaskedMultiHeadAttention": true, "DecoderMaskedSelfAttention": true,
	"DecoderAttention": true, "LongformerAttention": true, "SparseAttention": true,
}

// ErrFusedAttention reports an export whose attention is fused into one op.
var ErrFusedAttention = errors.New("attention is fused")

// ErrNoCrossAttention reports a model without text cross-attention.
var ErrNoCrossAttention = errors.New("no cross-attention")

// attention is one attention layer found in the graph, with the nodes the
// rewrite needs.
type attention struct {
	Layer
	softmax *onnxpb.NodeProto
	// pv is the MatMul(probabilities, V) node; the self-replace edit is
	// spliced after it.
	pv *onnxpb.NodeProto
}

// analysis is what the graph says about the UNet before any change.
type analysis struct {
	model  *onnxpb.ModelProto
	ix     *onnxgraph.Index
	opset  int64
	layers []*attention
	// norms are the GroupNorms' InstanceNormalization nodes, in graph
	// order: NormWeightInput's edit follows each.
	norms []*onnxpb.NodeProto
	desc  Description
}

// analyze finds and classifies every attention Softmax of a UNet and checks
// that the model can be instrumented. latent is the reference latent size
// (zero: the model's own fixed size).
func analyze(m *onnxpb.ModelProto, latent Size) (*analysis, error) {
	g := m.GetGraph()
	if g == nil {
		return nil, errors.New("the model has no graph")
	}
	a := &analysis{model: m, ix: onnxgraph.NewIndex(g), opset: onnxgraph.Opset(m)}
	if a.opset < minOpset {
		return nil, fmt.Errorf("the model uses ONNX opset %d; instrumenting needs opset %d or newer (re-export with opset_version=14 or later)", a.opset, minOpset)
	}
	for _, n := range g.GetNode() {
		if fusedAttentionOps[n.GetOpType()] {
			return nil, fmt.Errorf("%w: node %q is a fused %s op, so there is no attention Softmax to instrument; "+
				"this export was optimized (ONNX Runtime transformers optimizer, Olive or Optimum O2+): "+
				"export the UNet without attention fusion (for example optimize_pipeline --disable_attention) and try again",
				ErrFusedAttention, n.GetName(), n.GetOpType())
		}
	}
	for _, name := range []string{CrossWeightsInput, CrossKeepInput, SelfWeightInput, NormWeightInput} {
		if _, ok := a.ix.Input[name]; ok {
			return nil, fmt.Errorf("the model already has input %q: it is instrumented already (instrument the original model.onnx)", name)
		}
	}
	for _, name := range []string{SampleInput, TimestepInput, HiddenStatesInput} {
		if _, ok := a.ix.Input[name]; !ok {
			return nil, fmt.Errorf("the model has no input %q (its inputs: %s); expected a diffusers UNet export with inputs %s, %s, %s",
				name, strings.Join(inputNames(g), ", "), SampleInput, TimestepInput, HiddenStatesInput)
		}
	}
	if err := a.describeInputs(latent); err != nil {
		return nil, err
	}
	if err := a.findAttention(); err != nil {
		return nil, err
	}
	a.findNorms()
	return a, nil
}

// findNorms collects the float32 InstanceNormalization nodes: torch exports
// nn.GroupNorm before opset 18 as Reshape to [B, groups, −1],
// InstanceNormalization, Reshape back and the per-channel affine, so each
// is one GroupNorm's normalisation (a real InstanceNorm is the special
// case of one channel per group, and shares statistics the same way).
func (a *analysis) findNorms() {
	for _, n := range a.model.GetGraph().GetNode() {
		if n.GetOpType() != "InstanceNormalization" || n.GetDomain() != "" || len(n.GetInput()) != 3 || len(n.GetOutput()) != 1 {
			continue
		}
		// Float32 only. A float16 node is left alone: ONNX Runtime's CPU
		// provider runs it in float32 and keeps its output unrounded into
		// the next nodes, which any edit after it in float16 or between
		// Casts rounds, so neutral controls would no longer give the
		// export's output bit for bit (measured on the tiny model's fp16
		// copy).
		if a.ix.ElemType(n.GetInput()[0]) == onnxgraph.Float {
			a.norms = append(a.norms, n)
		}
	}
	a.desc.NormLayers = len(a.norms)
}

func inputNames(g *onnxpb.GraphProto) []string {
	var names []string
	for _, v := range g.GetInput() {
		names = append(names, v.GetName())
	}
	return names
}

// describeInputs reads the UNet inputs' types and the latent size.
func (a *analysis) describeInputs(latent Size) error {
	d := &a.desc
	d.Opset = a.opset
	d.SampleType = typeName(onnxgraph.TensorElemType(a.ix.Input[SampleInput]))
	d.TimestepType = typeName(onnxgraph.TensorElemType(a.ix.Input[TimestepInput]))
	d.HiddenStatesType = typeName(onnxgraph.TensorElemType(a.ix.Input[HiddenStatesInput]))
	if dims, ok := onnxgraph.TensorDims(a.ix.Input[HiddenStatesInput]); ok && len(dims) == 3 && dims[1].Size > 0 {
		d.Tokens = int(dims[1].Size)
	}
	dims, ok := onnxgraph.TensorDims(a.ix.Input[SampleInput])
	if ok && len(dims) != 4 {
		return fmt.Errorf("input %q has %d dimensions; a UNet's sample is [batch, channels, height, width]", SampleInput, len(dims))
	}
	if ok && dims[2].Size > 0 && dims[3].Size > 0 {
		own := Size{Height: int(dims[2].Size), Width: int(dims[3].Size)}
		if latent != (Size{}) && latent != own {
			return fmt.Errorf("the model's %s input is fixed at %s latent positions, not the %s asked for", SampleInput, own, latent)
		}
		d.Latent, d.LatentFixed = own, true
		return nil
	}
	if latent.Height <= 0 || latent.Width <= 0 {
		return fmt.Errorf("the model's %s input has a dynamic height and width: give the reference latent size (64×64 for 512 px SD 1.x)", SampleInput)
	}
	d.Latent = latent
	return nil
}

// FixedLatent returns the latent size a UNet's sample input is fixed at,
// and false when the model leaves its height and width dynamic (or has no
// 4-D sample input).
func FixedLatent(m *onnxpb.ModelProto) (Size, bool) {
	for _, v := range m.GetGraph().GetInput() {
		if v.GetName() != SampleInput {
			continue
		}
		dims, ok := onnxgraph.TensorDims(v)
		if ok && len(dims) == 4 && dims[2].Size > 0 && dims[3].Size > 0 {
			return Size{Height: int(dims[2].Size), Width: int(dims[3].Size)}, true
		}
	}
	return Size{}, false
}

// typeName names an element type the way Reword's ort package does.
func typeName(t onnxgraph.DataType) string {
	switch t {
	case onnxpb.TensorProto_FLOAT:
		return "float32"
	case onnxpb.TensorProto_FLOAT16:
		return "float16"
	case onnxpb.TensorProto_DOUBLE:
		return "float64"
	case onnxpb.TensorProto_BFLOAT16:
		return "bfloat16"
	case onnxpb.TensorProto_INT64:
		return "int64"
	case onnxpb.TensorProto_INT32:
		return "int32"
	case onnxpb.TensorProto_UNDEFINED:
		return "unknown"
	}
	return strings.ToLower(t.String())
}

// findAttention classifies every Softmax of the UNet's image path.
//
// A Softmax is attention when its input is Q·Kᵀ (a MatMul, possibly followed
// by scaling, masking and casts). It is cross attention when the keys carry
// data from encoder_hidden_states but none from sample, and self attention
// when they carry data from sample. This needs no node names, so exports
// from torch before 1.13 (nodes named Softmax_123) work; where scoped names
// exist (/attn1/, /attn2/) they must agree.
func (a *analysis) findAttention() error {
	fromSample := a.dataFlow(SampleInput)
	fromText := a.dataFlow(HiddenStatesInput)
	strides := a.strides(fromSample)
	softmaxes := 0
	names := map[string]bool{}
	for _, n := range a.ix.Graph.GetNode() {
		if n.GetOpType() != "Softmax" || (n.GetDomain() != "" && n.GetDomain() != "ai.onnx") {
			continue
		}
		softmaxes++
		scores := a.scoresOf(n, fromSample)
		if scores == nil || len(scores.GetInput()) < 2 || !fromSample[scores.GetInput()[0]] {
			continue // not attention over image features
		}
		keys := scores.GetInput()[1]
		var kind Kind
		switch {
		case fromSample[keys]:
			kind = Self
		case fromText[keys]:
			kind = Cross
		default:
			continue
		}
		l := &attention{softmax: n}
		l.Softmax = n.GetName()
		l.Name = uniqueName(names, layerName(n.GetName()), n.GetOutput()[0])
		l.Kind = kind
		if err := checkScopedName(n.GetName(), kind); err != nil {
			return err
		}
		if err := a.checkSoftmaxAxis(n); err != nil {
			return err
		}
		stride, ok := strides[n.GetOutput()[0]]
		if !ok || stride < 1 {
			return fmt.Errorf("attention layer %s: cannot tell its resolution from the downsampling and upsampling before it", l.Name)
		}
		l.Stride = stride
		l.Resolution = Size{Height: ceilDiv(a.desc.Latent.Height, stride), Width: ceilDiv(a.desc.Latent.Width, stride)}
		l.Queries = l.Resolution.Positions()
		l.Heads = a.heads(scores)
		dt := a.ix.ElemType(n.GetOutput()[0])
		l.DType = typeName(dt)
		if dt != onnxgraph.Float && dt != onnxgraph.Float16 {
			return fmt.Errorf("attention layer %s computes its probabilities in %s; only float32 and float16 are supported", l.Name, l.DType)
		}
		a.layers = append(a.layers, l)
	}
	cross, _ := a.countKinds()
	if cross == 0 {
		hint := ""
		if len(a.model.GetFunctions()) > 0 {
			hint = fmt.Sprintf("; the model defines %d local functions, whose bodies are not searched: export with functions inlined", len(a.model.GetFunctions()))
		}
		return fmt.Errorf("%w: none of the model's %d Softmax nodes is attention whose keys come from %s, so there is nothing to edit%s",
			ErrNoCrossAttention, softmaxes, HiddenStatesInput, hint)
	}
	return nil
}

func (a *analysis) countKinds() (cross, self int) {
	for _, l := range a.layers {
		if l.Kind == Cross {
			cross++
		} else {
			self++
		}
	}
	return cross, self
}

// layerName is the attention module's scope for scoped Softmax names
// (/…/attn2/Softmax → /…/attn2), the node name otherwise.
func layerName(softmax string) string {
	if i := strings.LastIndex(softmax, "/"); i > 0 {
		return softmax[:i]
	}
	return softmax
}

// uniqueName returns name, or fallback when name is empty, made unique among
// taken by a numeric suffix; inserted nodes are named after their layer.
func uniqueName(taken map[string]bool, name, fallback string) string {
	if name == "" {
		name = fallback
	}
	unique := name
	for k := 2; taken[unique]; k++ {
		unique = fmt.Sprintf("%s#%d", name, k)
	}
	taken[unique] = true
	return unique
}

// checkScopedName cross-checks the structural kind against diffusers'
// module names, where the export has them.
func checkScopedName(name string, kind Kind) error {
	switch {
	case strings.Contains(name, "/attn1/") && kind != Self:
		return fmt.Errorf("%s is named as self-attention (attn1) but its keys come from %s: refusing to guess", name, HiddenStatesInput)
	case strings.Contains(name, "/attn2/") && kind != Cross:
		return fmt.Errorf("%s is named as cross-attention (attn2) but its keys come from %s: refusing to guess", name, SampleInput)
	}
	return nil
}

// checkSoftmaxAxis requires normalization over the key axis, the last one.
func (a *analysis) checkSoftmaxAxis(n *onnxpb.NodeProto) error {
	axis := int64(-1)
	if at := onnxgraph.Attr(n, "axis"); at != nil {
		axis = at.GetI()
	}
	if axis == -1 {
		return nil
	}
	rank := -1
	for _, v := range a.ix.Graph.GetValueInfo() {
		if v.GetName() == n.GetInput()[0] {
			if dims, ok := onnxgraph.TensorDims(v); ok {
				rank = len(dims)
			}
		}
	}
	if rank > 0 && axis == int64(rank-1) {
		return nil
	}
	return fmt.Errorf("attention Softmax %s normalizes axis %d, which is not known to be the key axis (the last)", n.GetName(), axis)
}

// dataFlow returns the tensors whose values depend on the named graph input.
// Shapes do not count: Shape and Size outputs carry no data of their input,
// so a key reshaped with the image's batch size still counts as text.
func (a *analysis) dataFlow(input string) map[string]bool {
	reached := map[string]bool{input: true}
	for _, n := range a.ix.Graph.GetNode() {
		if n.GetOpType() == "Shape" || n.GetOpType() == "Size" {
			continue
		}
		for _, in := range n.GetInput() {
			if reached[in] {
				for _, out := range n.GetOutput() {
					reached[out] = true
				}
				break
			}
		}
	}
	return reached
}

// strides follows the image data from sample and returns, for each tensor on
// that path, how many latent positions per side one of its positions covers:
// strided Conv and pooling multiply it, Resize and Upsample halve it (UNet
// upsamplers double the size).
func (a *analysis) strides(fromSample map[string]bool) map[string]int {
	stride := map[string]int{SampleInput: 1}
	for _, n := range a.ix.Graph.GetNode() {
		s := 0
		for _, in := range n.GetInput() {
			if v, ok := stride[in]; ok && fromSample[in] && v > s {
				s = v
			}
		}
		if s == 0 {
			continue
		}
		switch n.GetOpType() {
		case "Conv", "AveragePool", "MaxPool":
			if at := onnxgraph.Attr(n, "strides"); at != nil && len(at.GetInts()) > 0 {
				s *= int(at.GetInts()[0])
			}
		case "Resize", "Upsample":
			s /= 2
		}
		for _, out := range n.GetOutput() {
			stride[out] = s
		}
	}
	return stride
}

// scoresOf finds the Q·Kᵀ product a Softmax normalizes, through the scaling,
// masking and casts exports put between them, following the image data.
func (a *analysis) scoresOf(softmax *onnxpb.NodeProto, fromSample map[string]bool) *onnxpb.NodeProto {
	t := softmax.GetInput()[0]
	for depth := 0; depth < 8; depth++ {
		n := a.ix.Producer[t]
		if n == nil {
			return nil
		}
		switch n.GetOpType() {
		case "MatMul":
			return n
		case "Mul", "Div", "Add", "Sub", "Cast", "Identity", "Where":
			next := ""
			for _, in := range n.GetInput() {
				if fromSample[in] {
					next = in
					break
				}
			}
			if next == "" {
				return nil
			}
			t = next
		default:
			return nil
		}
	}
	return nil
}

// heads reads the head count from the Reshape that splits the queries into
// heads ([batch, queries, heads, head_dim]), when its target shape states
// the head count as a constant. It returns 0 when it does not.
func (a *analysis) heads(scores *onnxpb.NodeProto) int {
	t := scores.GetInput()[0]
	for depth := 0; depth < 8; depth++ {
		n := a.ix.Producer[t]
		if n == nil {
			return 0
		}
		switch n.GetOpType() {
		case "Reshape":
			if v, ok := a.ix.ConstInts(n.GetInput()[1]); ok && len(v.Values) == 4 && v.Known[2] && v.Values[2] > 0 {
				return int(v.Values[2])
			}
		case "Transpose", "Mul", "Div", "Cast", "Identity":
		default:
			return 0
		}
		t = n.GetInput()[0]
	}
	return 0
}

// probsTimesValues finds the MatMul(P, V) that consumes a Softmax's
// probabilities, directly or through one Cast.
func (a *analysis) probsTimesValues(softmax *onnxpb.NodeProto) (*onnxpb.NodeProto, error) {
	t := softmax.GetOutput()[0]
	for hop := 0; hop < 2; hop++ {
		cs := a.ix.Consumers[t]
		if _, isOutput := a.ix.Output[t]; isOutput || len(cs) != 1 {
			return nil, fmt.Errorf("self-attention layer %s: its probabilities are read by %d nodes, expected exactly one MatMul with the values", layerName(softmax.GetName()), len(cs))
		}
		c := cs[0]
		switch {
		case c.GetOpType() == "MatMul" && c.GetInput()[0] == t:
			return c, nil
		case c.GetOpType() == "Cast" && hop == 0:
			t = c.GetOutput()[0]
		default:
			return nil, fmt.Errorf("self-attention layer %s: its probabilities go into %s %q, expected a MatMul with the values", layerName(softmax.GetName()), c.GetOpType(), c.GetName())
		}
	}
	return nil, fmt.Errorf("self-attention layer %s: no MatMul with the values after its probabilities", layerName(softmax.GetName()))
}

// plan decides which layers are edited and which feed a maps output, and
// checks that every edited self layer can take the edit.
func (a *analysis) plan(opts Options) error {
	d := &a.desc
	positions := d.Latent.Positions()
	switch {
	case opts.SelfReplaceMaxQueries < 0:
		d.SelfReplaceMaxQueries = 0
	case opts.SelfReplaceMaxQueries == 0:
		d.SelfReplaceMaxQueries = positions / 16
	default:
		d.SelfReplaceMaxQueries = opts.SelfReplaceMaxQueries
	}
	for _, l := range a.layers {
		switch l.Kind {
		case Cross:
			l.Edited = true
		case Self:
			// Every self layer gets the switchable edit, so that a run can
			// choose its layers (SelfLayersInput); the limit only sets the
			// default. A negative limit leaves self attention alone.
			l.Edited = opts.SelfReplaceMaxQueries >= 0
			if l.Edited {
				pv, err := a.probsTimesValues(l.softmax)
				if err != nil {
					return err
				}
				l.pv = pv
			}
		}
	}
	mapsQueries, err := a.mapsQueries(opts.MapsQueries)
	if err != nil {
		return err
	}
	// One output per stride: layers of one stride run on the same grid, so
	// their maps can be averaged cell by cell.
	byStride := map[int]*MapsOutput{}
	var strides []int
	for _, l := range a.layers {
		if l.Kind != Cross {
			continue
		}
		out, ok := byStride[l.Stride]
		if !ok {
			out = &MapsOutput{Name: MapsOutputName(l.Stride), Stride: l.Stride, Resolution: l.Resolution}
			byStride[l.Stride] = out
			strides = append(strides, l.Stride)
		}
		l.Maps = out.Name
		out.Layers = append(out.Layers, l.Name)
	}
	sort.Ints(strides)
	d.Maps = nil
	for _, s := range strides {
		out := byStride[s]
		d.Maps = append(d.Maps, *out)
		if out.Resolution.Positions() != mapsQueries {
			continue
		}
		if d.BlendMaps != "" {
			return fmt.Errorf("cross-attention layers with %d queries run at different strides (%s and %s)", mapsQueries, d.BlendMaps, out.Name)
		}
		d.BlendMaps = out.Name
	}
	d.Layout = LayoutVersion
	return nil
}

// mapsQueries picks the query count of the cross-attention layers whose maps
// are output: the one asked for, or by default the smallest that is at
// least 1/16 of the latent positions (the 16×16 layers at 512 px, which
// Prompt-to-Prompt's local blending averages).
func (a *analysis) mapsQueries(asked int) (int, error) {
	counts := map[int]bool{}
	for _, l := range a.layers {
		if l.Kind == Cross {
			counts[l.Queries] = true
		}
	}
	var sorted []int
	for q := range counts {
		sorted = append(sorted, q)
	}
	sort.Ints(sorted)
	if asked > 0 {
		if !counts[asked] {
			return 0, fmt.Errorf("no cross-attention layer has %d queries at %s latent; the model has %v", asked, a.desc.Latent, sorted)
		}
		return asked, nil
	}
	if asked < 0 {
		return 0, fmt.Errorf("maps query count must be positive, got %d", asked)
	}
	floor := a.desc.Latent.Positions() / 16
	for _, q := range sorted {
		if q >= floor {
			return q, nil
		}
	}
	return sorted[len(sorted)-1], nil
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }
