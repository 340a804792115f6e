package graph

import (
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"reword/backend/graph/modelfile"
	"reword/backend/graph/onnxpb"
)

// A VAE encoder exported with diffusers' ONNX conversion script (and
// Optimum before it switched to latent_parameters) returns
// DiagonalGaussianDistribution.sample(): mean + std·ε with ε drawn by a
// RandomNormal(Like) node on every run. Inversion needs the posterior
// mean (docs/algorithm.md, section 8): a random draw would make every
// inversion of the same photo different. PosteriorMean rewrites such a
// graph to return the mean; the rest of the encoder is left as it is.

// randomOps are the ONNX operators whose outputs differ from run to run.
var randomOps = map[string]bool{
	"RandomNormal": true, "RandomNormalLike": true, "RandomUniform": true,
	"RandomUniformLike": true, "Multinomial": true, "Bernoulli": true,
}

// ErrNotGaussianSample is wrapped by PosteriorMean's error for an output
// that is random in a form it cannot take the mean of.
var ErrNotGaussianSample = errors.New("the VAE encoder's output is random but not of the form mean + std·ε " +
	"(a diffusers DiagonalGaussianDistribution.sample), so its mean cannot be recovered: export the VAE encoder " +
	"with Hugging Face Optimum (optimum-cli export onnx): its vae_encoder outputs latent_parameters " +
	"(mean and log-variance), which a derived manifest uses as it is (in a model.json: vae_encoder.output " +
	"\"latent_parameters\", output_kind \"mean_logvar\")")

// PosteriorMean rewrites g so that its output named output, when it is a
// random draw mean + std·ε of the posterior, is the mean: the sum becomes
// an Identity of the mean, and the nodes and initializers nothing needs any
// more (the noise, the standard deviation) are removed. It reports whether
// it changed g: false when the output does not depend on a random operator
// (the encoder is deterministic already). A random output of another form
// is an error wrapping ErrNotGaussianSample.
func PosteriorMean(g *onnxpb.GraphProto, output string) (bool, error) {
	if !slices.ContainsFunc(g.GetOutput(), func(v *onnxpb.ValueInfoProto) bool { return v.GetName() == output }) {
		return false, fmt.Errorf("the graph has no output %q", output)
	}
	random := randomTensors(g)
	if !random[output] {
		return false, nil
	}
	producer := map[string]*onnxpb.NodeProto{}
	for _, n := range g.GetNode() {
		for _, o := range n.GetOutput() {
			producer[o] = n
		}
	}
	sum := producer[output]
	for sum != nil && sum.GetOpType() == "Identity" {
		sum = producer[sum.GetInput()[0]]
	}
	if sum == nil || sum.GetOpType() != "Add" || len(sum.GetInput()) != 2 {
		return false, fmt.Errorf("output %q: %w", output, ErrNotGaussianSample)
	}
	mean, noise := sum.GetInput()[0], sum.GetInput()[1]
	if random[mean] {
		mean, noise = noise, mean
	}
	if random[mean] || !scaledNoise(producer[noise], producer, random) {
		return false, fmt.Errorf("output %q: %w", output, ErrNotGaussianSample)
	}
	sum.OpType, sum.Input, sum.Attribute = proto.String("Identity"), []string{mean}, nil
	prune(g)
	return true, nil
}

// scaledNoise reports whether n is std·ε: a Mul of a deterministic tensor
// and the output of a random operator (possibly through a Cast).
func scaledNoise(n *onnxpb.NodeProto, producer map[string]*onnxpb.NodeProto, random map[string]bool) bool {
	if n == nil || n.GetOpType() != "Mul" || len(n.GetInput()) != 2 {
		return false
	}
	for i, in := range n.GetInput() {
		p := producer[in]
		for p != nil && p.GetOpType() == "Cast" {
			p = producer[p.GetInput()[0]]
		}
		if p != nil && randomOps[p.GetOpType()] && !random[n.GetInput()[1-i]] {
			return true
		}
	}
	return false
}

// randomTensors returns the names of the tensors of g whose values depend
// on a random operator. A node with subgraphs (If, Loop) counts as random
// when one of them holds a random operator or reads a random tensor.
func randomTensors(g *onnxpb.GraphProto) map[string]bool {
	random := map[string]bool{}
	for _, n := range g.GetNode() { // ONNX requires topological order
		r := randomOps[n.GetOpType()] || slices.ContainsFunc(n.GetInput(), func(s string) bool { return random[s] })
		for _, a := range n.GetAttribute() {
			for _, sub := range subgraphs(a) {
				r = r || subgraphRandom(sub, random)
			}
		}
		if r {
			for _, o := range n.GetOutput() {
				random[o] = true
			}
		}
	}
	return random
}

func subgraphs(a *onnxpb.AttributeProto) []*onnxpb.GraphProto {
	if a.GetG() != nil {
		return append([]*onnxpb.GraphProto{a.GetG()}, a.GetGraphs()...)
	}
	return a.GetGraphs()
}

func subgraphRandom(g *onnxpb.GraphProto, outer map[string]bool) bool {
	for _, n := range g.GetNode() {
		if randomOps[n.GetOpType()] || slices.ContainsFunc(n.GetInput(), func(s string) bool { return outer[s] }) {
			return true
		}
		for _, a := range n.GetAttribute() {
			for _, sub := range subgraphs(a) {
				if subgraphRandom(sub, outer) {
					return true
				}
			}
		}
	}
	return false
}

// prune removes the nodes, initializers and value infos of g that no graph
// output needs.
func prune(g *onnxpb.GraphProto) {
	needed := map[string]bool{}
	for _, o := range g.GetOutput() {
		needed[o.GetName()] = true
	}
	nodes := g.GetNode()
	keep := make([]bool, len(nodes))
	for i := len(nodes) - 1; i >= 0; i-- {
		n := nodes[i]
		if !slices.ContainsFunc(n.GetOutput(), func(s string) bool { return needed[s] }) {
			continue
		}
		keep[i] = true
		markInputs(n, needed)
	}
	kept := nodes[:0]
	for i, n := range nodes {
		if keep[i] {
			kept = append(kept, n)
		}
	}
	g.Node = kept
	g.Initializer = slices.DeleteFunc(g.Initializer, func(t *onnxpb.TensorProto) bool { return !needed[t.GetName()] })
	g.ValueInfo = slices.DeleteFunc(g.ValueInfo, func(v *onnxpb.ValueInfoProto) bool { return !needed[v.GetName()] })
}

// markInputs marks the inputs of n, and the outer names its subgraphs
// read, as needed.
func markInputs(n *onnxpb.NodeProto, needed map[string]bool) {
	for _, in := range n.GetInput() {
		needed[in] = true
	}
	for _, a := range n.GetAttribute() {
		for _, sub := range subgraphs(a) {
			for _, sn := range sub.GetNode() {
				markInputs(sn, needed)
			}
		}
	}
}

// PosteriorMeanFile returns the VAE encoder model at path rewritten by
// PosteriorMean to output the posterior mean as output, encoded for
// ort.NewSessionFromBytes, or nil when the output is not random and the
// file can be used as it is (RewriteFile with PosteriorMeanRewrite, whose
// refusal of external weights names Optimum's export as the other fix).
func PosteriorMeanFile(path, output string) ([]byte, error) {
	b, err := RewriteFile(path, "VAE encoder", PosteriorMeanRewrite(output))
	return b, WithEncoderAdvice(err)
}

// WithEncoderAdvice adds to a RewriteFile error about a sampling VAE
// encoder's external weights the fix that needs no rewrite: Optimum's
// export, whose latent_parameters output is deterministic.
func WithEncoderAdvice(err error) error {
	if !errors.Is(err, ErrExternalWeights) {
		return err
	}
	return fmt.Errorf("%w; or export the VAE encoder with Hugging Face Optimum (optimum-cli export onnx), whose vae_encoder "+
		"outputs latent_parameters (mean and log-variance)", err)
}

// OutputNames returns the names of the graph outputs of the model file at
// path, reading the graph but none of the large weights.
func OutputNames(path string) ([]string, error) {
	m, err := modelfile.Read(path)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, o := range m.Proto.GetGraph().GetOutput() {
		names = append(names, o.GetName())
	}
	return names, nil
}
