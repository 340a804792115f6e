package ort

import (
	"fmt"
	"path/filepath"
	"slices"

	onnx "github.com/yalue/onnxruntime_go"
)

// externalDataDirKey is ONNX Runtime's session config entry
// (kOrtSessionOptionsModelExternalInitializersFileFolderPath, in 1.24.1)
// naming the folder whose files the external initializers of a model
// loaded from bytes refer to. Without it ONNX Runtime 1.24.1 refuses them
// ("model_path must not be empty").
const externalDataDirKey = "session.model_external_initializers_file_folder_path"

// ExternalModel is a model held in memory whose weights stay in external
// files, as graph.RewriteKeepingWeights returns a rewritten export that keeps
// its weight files.
type ExternalModel struct {
	// Model is the encoded model; the locations of its external
	// initializers are relative to Dir.
	Model []byte
	// Dir is the folder holding the external weight files: the original
	// model file's.
	Dir string
	// Probe is Model with each external initializer declared as a graph
	// input instead, so that it loads without its weights: ONNX Runtime
	// reads the model's inputs and outputs from it, because onnxruntime_go
	// reads those of a model in memory through a session without options,
	// which could not find Model's weight files.
	Probe []byte
	// Weights names Probe's inputs that stand for Model's external
	// initializers; they are not inputs of the session.
	Weights []string
}

// NewSessionFromExternalModel loads a model held in memory whose external
// weight files lie in m.Dir. ONNX Runtime reads those files itself, as it
// does for a model loaded from its path; the weights are not copied into
// m.Model. name is used in errors.
func NewSessionFromExternalModel(name string, m ExternalModel, opts Options) (*Session, error) {
	if err := Init(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(m.Dir)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	ins, outs, err := onnx.GetInputOutputInfoWithONNXData(m.Probe)
	if err != nil {
		return nil, fmt.Errorf("reading the inputs and outputs of model %s: %w", name, err)
	}
	weights := map[string]bool{}
	for _, w := range m.Weights {
		weights[w] = true
	}
	ins = slices.DeleteFunc(ins, func(i onnx.InputOutputInfo) bool { return weights[i.Name] })
	return newSession(name, ins, outs, opts, func(in, out []string, so *onnx.SessionOptions) (*onnx.DynamicAdvancedSession, error) {
		if err := so.AddSessionConfigEntry(externalDataDirKey, dir); err != nil {
			return nil, fmt.Errorf("setting %s: %w", externalDataDirKey, err)
		}
		return onnx.NewDynamicAdvancedSessionWithONNXData(m.Model, in, out, so)
	})
}
