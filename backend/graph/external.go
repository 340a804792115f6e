package graph

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"

	"reword/backend/graph/modelfile"
	"reword/backend/graph/onnxpb"
)

// Exports past protobuf's 2 GB limit (SDXL's second text encoder in
// float32), and those saved with external data on purpose, keep their
// weights in files beside model.onnx. RewriteFile's bytes cannot carry
// them, so RewriteKeepingWeights leaves them where they are: the rewritten
// graph keeps the initializers' locations, relative to the model's folder,
// and ONNX Runtime reads the files from that folder (ort.ExternalModel).

// Rewritten is a model file after RewriteKeepingWeights's rewrites.
type Rewritten struct {
	// Model is the rewritten model, encoded. Its external initializers
	// keep their locations, relative to Dir.
	Model []byte
	// Dir is the model file's folder, which holds its external weight
	// files; empty when every weight is embedded in Model.
	Dir string
	// Probe is Model with each external initializer declared as a graph
	// input instead (nil when Dir is empty): a model that loads without
	// its weight files, for reading Model's inputs and outputs.
	Probe []byte
	// Weights names the inputs of Probe that stand for external
	// initializers.
	Weights []string
}

// RewriteKeepingWeights is RewriteFile for models that may keep their
// weights in external files: it returns nil when no rewrite changes the
// model and the file can be opened as it is, the rewritten model with its
// weights embedded when it had no external ones, and otherwise the
// rewritten graph that still refers to the external files, which are
// never read here. what names the model in errors.
func RewriteKeepingWeights(path, what string, rewrites ...Rewrite) (*Rewritten, error) {
	m, err := modelfile.Read(path)
	if err != nil {
		return nil, err
	}
	if !m.HasExternalData() {
		b, err := RewriteFile(path, what, rewrites...)
		if b == nil {
			return nil, err
		}
		return &Rewritten{Model: b}, err
	}
	// Embedded initializers, small in an export with external data, are
	// read whole so that the encoded graph carries them; external ones
	// stay metadata and locations.
	if m, err = modelfile.ReadWithOptions(path, modelfile.Options{InlineLimit: math.MaxInt}); err != nil {
		return nil, err
	}
	g := m.Proto.GetGraph()
	changed := false
	for _, r := range rewrites {
		c, err := r.Apply(g)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", path, what, err)
		}
		changed = changed || c
	}
	if !changed {
		return nil, nil
	}
	dir := filepath.Dir(path)
	if err := checkExternalWeights(m.Proto, dir); err != nil {
		return nil, fmt.Errorf("%s: %s with external weights, rewritten in memory: %w", path, what, err)
	}
	r := &Rewritten{Dir: dir}
	if r.Model, err = proto.Marshal(m.Proto); err != nil {
		return nil, fmt.Errorf("%s: encoding the rewritten %s: %w", path, what, err)
	}
	if r.Probe, r.Weights, err = weightlessProbe(m.Proto); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", path, what, err)
	}
	return r, nil
}

// checkExternalWeights refuses, with what is allowed, the external
// weights ONNX Runtime would not read from a model given as bytes with
// dir as its folder: locations outside dir (ONNX Runtime refuses paths
// that leave the model's folder) and files that are missing or shorter
// than the weights they should hold. It also refuses external weights in
// subgraphs, which weightlessProbe cannot turn into graph inputs.
func checkExternalWeights(m *onnxpb.ModelProto, dir string) error {
	for _, n := range m.GetGraph().GetNode() {
		for _, a := range n.GetAttribute() {
			for _, sub := range subgraphs(a) {
				if t := firstExternal(sub); t != nil {
					return fmt.Errorf("initializer %q of a subgraph of node %q keeps its weights in an external file; "+
						"only the main graph's initializers may (save the model with that subgraph's weights embedded)",
						t.GetName(), n.GetName())
				}
			}
		}
	}
	sizes := map[string]int64{}
	for _, t := range m.GetGraph().GetInitializer() {
		if t.GetDataLocation() != onnxpb.TensorProto_EXTERNAL {
			continue
		}
		loc, end, err := externalSpan(t)
		if err != nil {
			return err
		}
		size, ok := sizes[loc]
		if !ok {
			if size, err = weightFileSize(dir, loc); err != nil {
				return fmt.Errorf("initializer %q: %w", t.GetName(), err)
			}
			sizes[loc] = size
		}
		if end > size {
			return fmt.Errorf("initializer %q reads bytes up to %d of %s, which has %d: the weight file is incomplete or belongs to another export",
				t.GetName(), end, loc, size)
		}
	}
	return nil
}

// weightFileSize returns the size of the external weight file loc of a
// model in dir, and refuses a file that is missing or that ONNX Runtime
// would not read: it resolves links, and refuses files whose real path
// leaves the model's real folder (ONNX Runtime 1.24.1: "escapes model
// directory"), such as the links into blobs/ of a Hugging Face cache.
func weightFileSize(dir, loc string) (int64, error) {
	path := filepath.Join(dir, loc)
	st, err := os.Stat(path)
	if err != nil {
		return 0, fmt.Errorf("its weights are in %s, which cannot be read (%w): "+
			"the export's weight files must stay beside its model.onnx, under the names it gives them", loc, err)
	}
	base, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return 0, err
	}
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return 0, err
	}
	if rel, err := filepath.Rel(base, target); err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return 0, fmt.Errorf("its weights are in %s, a link to %s, outside the model's folder %s: ONNX Runtime reads external weights "+
			"only from files inside the model's folder, links resolved; put the file itself there in place of the link "+
			"(a Hugging Face cache links its files to blobs/: download with --local-dir for real files)", loc, target, base)
	}
	return st.Size(), nil
}

// externalSpan returns an external initializer's location and, when its
// length is given, where its bytes end in that file (0 otherwise).
func externalSpan(t *onnxpb.TensorProto) (string, int64, error) {
	var loc string
	var offset, length int64
	for _, kv := range t.GetExternalData() {
		var err error
		switch kv.GetKey() {
		case "location":
			loc = kv.GetValue()
		case "offset":
			offset, err = strconv.ParseInt(kv.GetValue(), 10, 64)
		case "length":
			length, err = strconv.ParseInt(kv.GetValue(), 10, 64)
		}
		if err != nil {
			return "", 0, fmt.Errorf("initializer %q: external data %s %q is not a number", t.GetName(), kv.GetKey(), kv.GetValue())
		}
	}
	clean := filepath.Clean(filepath.FromSlash(loc))
	switch {
	case loc == "":
		return "", 0, fmt.Errorf("initializer %q is marked external but names no file (no \"location\" entry)", t.GetName())
	case filepath.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)):
		return "", 0, fmt.Errorf("initializer %q keeps its weights in %q, outside the model's folder: ONNX Runtime reads external "+
			"weights only from files in the model's folder or below it, named relative to it; move the file beside model.onnx "+
			"and save the model with that location", t.GetName(), loc)
	}
	end := int64(0)
	if length > 0 {
		end = offset + length
	}
	return clean, end, nil
}

// firstExternal returns the first initializer with external weights of g
// or of the subgraphs nested in it, or nil.
func firstExternal(g *onnxpb.GraphProto) *onnxpb.TensorProto {
	for _, t := range g.GetInitializer() {
		if t.GetDataLocation() == onnxpb.TensorProto_EXTERNAL {
			return t
		}
	}
	for _, n := range g.GetNode() {
		for _, a := range n.GetAttribute() {
			for _, sub := range subgraphs(a) {
				if t := firstExternal(sub); t != nil {
					return t
				}
			}
		}
	}
	return nil
}

// weightlessProbe encodes m with every external initializer of the main
// graph declared as a graph input of its type and shape instead, and
// returns it with their names. ONNX Runtime loads it without reading a
// weight and infers the same inputs and outputs as for m, shapes
// included, since those inputs have the weights' shapes. m is left as it
// was.
func weightlessProbe(m *onnxpb.ModelProto) ([]byte, []string, error) {
	g := m.GetGraph()
	inputs, inits := g.Input, g.Initializer
	// The lists are swapped for the encoding and put back, rather than the
	// model cloned: a clone would copy every embedded weight.
	defer func() { g.Input, g.Initializer = inputs, inits }()
	declared := map[string]bool{}
	for _, v := range inputs {
		declared[v.GetName()] = true
	}
	g.Input, g.Initializer = slices.Clone(inputs), nil
	var weights []string
	for _, t := range inits {
		if t.GetDataLocation() != onnxpb.TensorProto_EXTERNAL {
			g.Initializer = append(g.Initializer, t)
			continue
		}
		weights = append(weights, t.GetName())
		if !declared[t.GetName()] { // an IR < 4 model lists its initializers as inputs already
			g.Input = append(g.Input, tensorInput(t))
		}
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding the model without its external weights: %w", err)
	}
	return b, weights, nil
}

// tensorInput declares a graph input of t's element type and shape.
func tensorInput(t *onnxpb.TensorProto) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{}
	for _, d := range t.GetDims() {
		shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{
			Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: d}})
	}
	return &onnxpb.ValueInfoProto{
		Name: proto.String(t.GetName()),
		Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{
			ElemType: proto.Int32(t.GetDataType()), Shape: shape}}},
	}
}
