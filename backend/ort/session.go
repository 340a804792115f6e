package ort

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	onnx "github.com/yalue/onnxruntime_go"
)

// Provider names an execution provider.
type Provider string

const (
	// CPU is ONNX Runtime's default provider; it is always available.
	CPU Provider = "cpu"
	// CUDA runs on an NVIDIA GPU. It needs an ONNX Runtime GPU build with
	// its CUDA provider library beside libonnxruntime; the copy `make ort`
	// fetches is CPU-only.
	CUDA Provider = "cuda"
)

// ParseProvider turns a user-facing name into a Provider.
func ParseProvider(s string) (Provider, error) {
	switch p := Provider(strings.ToLower(strings.TrimSpace(s))); p {
	case CPU, CUDA:
		return p, nil
	case "":
		return CPU, nil
	default:
		return "", fmt.Errorf("unknown execution provider %q: use %q or %q", s, CPU, CUDA)
	}
}

// Options configure a session.
type Options struct {
	// Provider selects where the model runs; empty means CPU.
	Provider Provider
	// DeviceID selects the GPU for CUDA.
	DeviceID int
	// Threads is the intra-op thread count; 0 uses one per available core.
	Threads int
	// ProfilePrefix, when set, makes ONNX Runtime write a JSON profile of
	// every operator call, to a file whose name starts with it, when the
	// session is closed.
	ProfilePrefix string
	// DisableCPUArena turns off ONNX Runtime's CPU memory arena, which
	// keeps the memory a run allocated for the next ones and grows in
	// large steps: each tensor is then allocated and freed on its own, so
	// a process's peak memory follows what the tensors need (benchmarks).
	DisableCPUArena bool
	// DisableMemPattern turns off ONNX Runtime's memory pattern: after a
	// model's first run at given input shapes it allocates one block for
	// all its planned tensors in each run, which the arena then holds
	// beside what the first run allocated. Without it the arena holds what
	// one run needs (benchmarks of models that fill the machine).
	DisableMemPattern bool
}

// Info describes one input or output of a model.
type Info struct {
	Name  string
	DType DType
	// Shape has -1 for dimensions the model leaves dynamic.
	Shape []int64
}

func (i Info) String() string {
	dims := make([]string, len(i.Shape))
	for k, d := range i.Shape {
		if d < 0 {
			dims[k] = "?"
		} else {
			dims[k] = strconv.FormatInt(d, 10)
		}
	}
	return fmt.Sprintf("%s %s[%s]", i.Name, i.DType, strings.Join(dims, ","))
}

// Session is a loaded model. Run may be called from several goroutines at
// once (ONNX Runtime sessions are thread-safe for Run); Close must not race
// with Run.
type Session struct {
	name    string
	dyn     *onnx.DynamicAdvancedSession
	inputs  []Info
	outputs []Info

	mu     sync.RWMutex
	closed bool
}

// NewSession loads the model at path. External weight files referenced by
// the model are resolved relative to the model's directory.
func NewSession(path string, opts Options) (*Session, error) {
	if err := Init(); err != nil {
		return nil, err
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("model %s: %w", path, err)
	}
	ins, outs, err := onnx.GetInputOutputInfo(path)
	if err != nil {
		return nil, fmt.Errorf("reading model %s: %w", path, err)
	}
	return newSession(path, ins, outs, opts, func(in, out []string, so *onnx.SessionOptions) (*onnx.DynamicAdvancedSession, error) {
		return onnx.NewDynamicAdvancedSession(path, in, out, so)
	})
}

// NewSessionFromBytes loads a model held in memory; name is used in errors.
// Models with external weight files must be loaded with NewSession or
// NewSessionFromExternalModel instead.
func NewSessionFromBytes(name string, model []byte, opts Options) (*Session, error) {
	if err := Init(); err != nil {
		return nil, err
	}
	ins, outs, err := onnx.GetInputOutputInfoWithONNXData(model)
	if err != nil {
		return nil, fmt.Errorf("reading model %s: %w", name, err)
	}
	return newSession(name, ins, outs, opts, func(in, out []string, so *onnx.SessionOptions) (*onnx.DynamicAdvancedSession, error) {
		return onnx.NewDynamicAdvancedSessionWithONNXData(model, in, out, so)
	})
}

type sessionMaker func(in, out []string, so *onnx.SessionOptions) (*onnx.DynamicAdvancedSession, error)

func newSession(name string, ins, outs []onnx.InputOutputInfo, opts Options, make sessionMaker) (*Session, error) {
	so, err := sessionOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", name, err)
	}
	defer so.Destroy()
	s := &Session{name: name, inputs: infos(ins), outputs: infos(outs)}
	dyn, err := make(names(s.inputs), names(s.outputs), so)
	if err != nil {
		return nil, fmt.Errorf("creating session for %s: %w", name, err)
	}
	s.dyn = dyn
	return s, nil
}

func sessionOptions(opts Options) (*onnx.SessionOptions, error) {
	so, err := onnx.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			so.Destroy()
		}
	}()
	threads := opts.Threads
	if threads < 0 {
		return nil, fmt.Errorf("threads must be ≥ 0 (0 = one per core), got %d", threads)
	}
	if threads == 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	if err := so.SetIntraOpNumThreads(threads); err != nil {
		return nil, err
	}
	// The pipeline runs one model call at a time; inter-op parallelism only
	// oversubscribes the cores the intra-op pool already uses.
	if err := so.SetInterOpNumThreads(1); err != nil {
		return nil, err
	}
	if opts.ProfilePrefix != "" {
		if err := so.EnableProfiling(opts.ProfilePrefix); err != nil {
			return nil, fmt.Errorf("enabling profiling: %w", err)
		}
	}
	if opts.DisableCPUArena {
		if err := so.SetCpuMemArena(false); err != nil {
			return nil, fmt.Errorf("disabling the CPU memory arena: %w", err)
		}
	}
	if opts.DisableMemPattern {
		if err := so.SetMemPattern(false); err != nil {
			return nil, fmt.Errorf("disabling the memory pattern: %w", err)
		}
	}
	switch opts.Provider {
	case CPU, "":
	case CUDA:
		cuda, err := onnx.NewCUDAProviderOptions()
		if err != nil {
			return nil, cudaUnavailable(err)
		}
		defer cuda.Destroy()
		if err := cuda.Update(map[string]string{"device_id": strconv.Itoa(opts.DeviceID)}); err != nil {
			return nil, cudaUnavailable(err)
		}
		if err := so.AppendExecutionProviderCUDA(cuda); err != nil {
			return nil, cudaUnavailable(err)
		}
	default:
		return nil, fmt.Errorf("unknown execution provider %q: use %q or %q", opts.Provider, CPU, CUDA)
	}
	ok = true
	return so, nil
}

func cudaUnavailable(err error) error {
	return fmt.Errorf("the CUDA execution provider is not available in %s (the library `make ort` provisions is CPU-only; "+
		"point %s at an ONNX Runtime %s GPU build with libonnxruntime_providers_cuda.so beside it, or use provider %q): %w",
		LoadedLibrary(), LibraryEnv, Version, CPU, err)
}

func infos(src []onnx.InputOutputInfo) []Info {
	out := make([]Info, len(src))
	for i, s := range src {
		out[i] = Info{Name: s.Name, DType: DType(s.DataType), Shape: append([]int64(nil), s.Dimensions...)}
	}
	return out
}

func names(in []Info) []string {
	out := make([]string, len(in))
	for i, x := range in {
		out[i] = x.Name
	}
	return out
}

// Name is the model path or the name given to NewSessionFromBytes.
func (s *Session) Name() string { return s.name }

// InputInfo lists the model's inputs in declaration order.
func (s *Session) InputInfo() []Info { return s.inputs }

// OutputInfo lists the model's outputs in declaration order.
func (s *Session) OutputInfo() []Info { return s.outputs }

// Input returns the named input's description.
func (s *Session) Input(name string) (Info, bool) { return find(s.inputs, name) }

// Output returns the named output's description.
func (s *Session) Output(name string) (Info, bool) { return find(s.outputs, name) }

func find(list []Info, name string) (Info, bool) {
	for _, i := range list {
		if i.Name == name {
			return i, true
		}
	}
	return Info{}, false
}

// Run feeds every model input by name and returns every output by name. The
// caller owns the returned values and must Destroy them (see Outputs.Destroy).
// Models with float16 outputs need RunInto: onnxruntime_go v1.27.0 cannot
// copy out float16 tensors that ONNX Runtime allocated.
func (s *Session) Run(inputs map[string]Value) (Outputs, error) {
	return s.RunContext(context.Background(), inputs)
}

// RunContext is Run that aborts the model call when ctx is cancelled; the
// error then wraps ctx.Err().
func (s *Session) RunContext(ctx context.Context, inputs map[string]Value) (Outputs, error) {
	for _, o := range s.outputs {
		if o.DType == Float16 {
			return nil, fmt.Errorf("%s: output %q is float16, which Run cannot return: use RunInto with an output from NewFloat16Tensor", s.name, o.Name)
		}
	}
	outs := make([]Value, len(s.outputs))
	if err := s.run(ctx, inputs, outs); err != nil {
		return nil, err
	}
	res := make(Outputs, len(outs))
	for i, o := range outs {
		res[s.outputs[i].Name] = o
	}
	return res, nil
}

// RunInto is Run with caller-allocated outputs: a model output given a
// value of the right shape and type is filled in place; one not given is
// computed all the same (ONNX Runtime runs the whole graph) and dropped, so
// leave out only outputs that cost nothing, such as empty ones. It avoids an
// allocation per call in loops that run a model many times with the same
// shapes.
func (s *Session) RunInto(ctx context.Context, inputs, outputs map[string]Value) error {
	for name, v := range outputs {
		if _, ok := find(s.outputs, name); !ok {
			return fmt.Errorf("%s: %s", s.name, unknownNames(outputs, s.outputs, "output"))
		}
		if v == nil {
			return fmt.Errorf("%s: output %q was given no value", s.name, name)
		}
	}
	outs := make([]Value, len(s.outputs))
	for i, o := range s.outputs {
		outs[i] = outputs[o.Name]
	}
	err := s.run(ctx, inputs, outs)
	for i, o := range s.outputs {
		if _, ok := outputs[o.Name]; !ok && outs[i] != nil {
			outs[i].Destroy() // allocated by ONNX Runtime for this run
		}
	}
	return err
}

func (s *Session) run(ctx context.Context, inputs map[string]Value, outs []Value) error {
	ins := make([]Value, len(s.inputs))
	for i, in := range s.inputs {
		v, ok := inputs[in.Name]
		if !ok || v == nil {
			return fmt.Errorf("%s: missing input %q (the model takes %s)", s.name, in.Name, strings.Join(names(s.inputs), ", "))
		}
		ins[i] = v
	}
	if len(inputs) != len(s.inputs) {
		return fmt.Errorf("%s: %s", s.name, unknownNames(inputs, s.inputs, "input"))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	ro, err := onnx.NewRunOptions()
	if err != nil {
		return err
	}
	// A cancellation that fires as the run ends may already be inside
	// Terminate when stop is called: the options are destroyed only once it
	// has returned, or Terminate would touch freed memory.
	terminated := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(terminated)
		ro.Terminate()
	})
	defer func() {
		if !stop() {
			<-terminated
		}
		ro.Destroy()
	}()
	if err := s.dyn.RunWithOptions(ins, outs, ro); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%s: run aborted: %w", s.name, ctx.Err())
		}
		return fmt.Errorf("%s: %w", s.name, err)
	}
	return nil
}

func unknownNames(given map[string]Value, want []Info, what string) string {
	var extra []string
	for n := range given {
		if _, ok := find(want, n); !ok {
			extra = append(extra, n)
		}
	}
	sort.Strings(extra)
	return fmt.Sprintf("unknown %s name(s) %s (the model has %s)", what, strings.Join(extra, ", "), strings.Join(names(want), ", "))
}

// Close releases the session. It waits for runs in flight.
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.dyn.Destroy()
}

// Outputs are the values a Run returned, by output name.
type Outputs map[string]Value

// Destroy releases every value; use it with defer right after Run.
func (o Outputs) Destroy() {
	for _, v := range o {
		if v != nil {
			v.Destroy()
		}
	}
}

// Float32 returns a copy of the named float32 output and its shape.
func (o Outputs) Float32(name string) ([]float32, []int64, error) {
	v, ok := o[name]
	if !ok {
		return nil, nil, fmt.Errorf("no output named %q", name)
	}
	return Float32Data(v)
}
