// Package modelfile reads and writes ONNX model files without holding weight
// payloads in memory.
//
// A diffusers UNet export keeps its weights either in external files
// (weights.pb, model.onnx_data), which are referenced by location and never
// opened here, or embedded in model.onnx itself (up to the 2 GB protobuf
// limit). Read decodes the whole model except the payloads of large embedded
// initializers: for those it keeps the tensor's metadata (name, element type,
// dims) and where its record lies in the source file. Write re-emits such
// records byte for byte from the source file, so rewriting the graph of a
// multi-gigabyte model costs memory in proportion to the graph, not to the
// weights.
package modelfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"reword/backend/graph/onnxpb"
)

// DefaultInlineLimit is the size up to which an embedded initializer record
// is decoded whole. Shape constants and scalars stay readable; weight
// matrices stay on disk.
const DefaultInlineLimit = 64 << 10

// Options tune Read.
type Options struct {
	// InlineLimit is the largest initializer record, in bytes, that is
	// decoded with its payload; larger ones keep only their metadata in
	// memory. Zero means DefaultInlineLimit.
	InlineLimit int
}

// Model is a decoded model file. Proto may be edited freely (nodes, inputs,
// outputs, new initializers); initializers whose payload was left on disk
// must not have their payload fields set, and keep their metadata only.
type Model struct {
	Proto *onnxpb.ModelProto

	path   string
	stat   os.FileInfo
	onDisk map[*onnxpb.TensorProto]span
}

// span locates the encoded value of one initializer record in the source file.
type span struct{ off, n int64 }

// Field numbers, taken from the schema rather than written out by hand.
var (
	modelGraphField       = fieldNumber(&onnxpb.ModelProto{}, "graph")
	graphInitializerField = fieldNumber(&onnxpb.GraphProto{}, "initializer")
	tensorPayloadFields   = map[protowire.Number]bool{
		fieldNumber(&onnxpb.TensorProto{}, "float_data"):  true,
		fieldNumber(&onnxpb.TensorProto{}, "int32_data"):  true,
		fieldNumber(&onnxpb.TensorProto{}, "string_data"): true,
		fieldNumber(&onnxpb.TensorProto{}, "int64_data"):  true,
		fieldNumber(&onnxpb.TensorProto{}, "raw_data"):    true,
		fieldNumber(&onnxpb.TensorProto{}, "double_data"): true,
		fieldNumber(&onnxpb.TensorProto{}, "uint64_data"): true,
	}
)

func fieldNumber(m proto.Message, name string) protowire.Number {
	f := m.ProtoReflect().Descriptor().Fields().ByName(protoreflect.Name(name))
	if f == nil {
		// The generated schema is compiled in; a missing field is a build defect.
		panic(fmt.Sprintf("modelfile: schema has no field %q in %s", name, m.ProtoReflect().Descriptor().FullName()))
	}
	return f.Number()
}

// Read decodes the model at path with default options.
func Read(path string) (*Model, error) { return ReadWithOptions(path, Options{}) }

// ReadWithOptions decodes the model at path, leaving the payloads of
// initializers larger than opts.InlineLimit on disk.
func ReadWithOptions(path string, opts Options) (*Model, error) {
	limit := int64(opts.InlineLimit)
	if limit < 0 {
		return nil, fmt.Errorf("modelfile: InlineLimit must be ≥ 0, got %d", opts.InlineLimit)
	}
	if limit == 0 {
		limit = DefaultInlineLimit
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s is a directory, not an ONNX model file", path)
	}
	r := &fieldReader{r: f, path: path}
	m := &Model{Proto: &onnxpb.ModelProto{}, path: path, stat: st, onDisk: map[*onnxpb.TensorProto]span{}}

	var modelRest []byte
	graphSeen := false
	for off := int64(0); off < st.Size(); {
		fh, err := r.header(off, st.Size())
		if err != nil {
			return nil, err
		}
		if fh.num == modelGraphField && fh.typ == protowire.BytesType {
			if graphSeen {
				return nil, fmt.Errorf("%s: the model's graph field appears twice; such files are not supported", path)
			}
			graphSeen = true
			if m.Proto.Graph, err = m.readGraph(r, fh.valOff, fh.valOff+fh.valLen, limit); err != nil {
				return nil, err
			}
		} else {
			if modelRest, err = r.appendRaw(modelRest, off, fh.next); err != nil {
				return nil, err
			}
		}
		off = fh.next
	}
	graph := m.Proto.Graph
	if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(modelRest, m.Proto); err != nil {
		return nil, fmt.Errorf("%s: not an ONNX model: %w", path, err)
	}
	if !graphSeen || graph == nil {
		return nil, fmt.Errorf("%s: not an ONNX model: it has no graph", path)
	}
	m.Proto.Graph = graph
	return m, nil
}

func (m *Model) readGraph(r *fieldReader, start, end, limit int64) (*onnxpb.GraphProto, error) {
	var rest []byte
	var inits []*onnxpb.TensorProto
	for off := start; off < end; {
		fh, err := r.header(off, end)
		if err != nil {
			return nil, err
		}
		switch {
		case fh.num == graphInitializerField && fh.typ == protowire.BytesType && fh.valLen > limit:
			t, err := r.tensorMetadata(fh.valOff, fh.valOff+fh.valLen)
			if err != nil {
				return nil, err
			}
			m.onDisk[t] = span{fh.valOff, fh.valLen}
			inits = append(inits, t)
		case fh.num == graphInitializerField && fh.typ == protowire.BytesType:
			buf, err := r.appendRaw(nil, fh.valOff, fh.valOff+fh.valLen)
			if err != nil {
				return nil, err
			}
			t := &onnxpb.TensorProto{}
			if err := proto.Unmarshal(buf, t); err != nil {
				return nil, fmt.Errorf("%s: initializer at byte %d: %w", r.path, fh.valOff, err)
			}
			inits = append(inits, t)
		default:
			if rest, err = r.appendRaw(rest, off, fh.next); err != nil {
				return nil, err
			}
		}
		off = fh.next
	}
	g := &onnxpb.GraphProto{}
	if err := proto.Unmarshal(rest, g); err != nil {
		return nil, fmt.Errorf("%s: graph: %w", r.path, err)
	}
	g.Initializer = inits
	return g, nil
}

// PayloadOnDisk reports whether t is an initializer whose payload Read left
// in the source file.
func (m *Model) PayloadOnDisk(t *onnxpb.TensorProto) bool {
	_, ok := m.onDisk[t]
	return ok
}

// Path is the file the model was read from.
func (m *Model) Path() string { return m.path }

// HasExternalData reports whether any initializer refers to an external
// weight file.
func (m *Model) HasExternalData() bool {
	for _, t := range m.Proto.GetGraph().GetInitializer() {
		if t.GetDataLocation() == onnxpb.TensorProto_EXTERNAL {
			return true
		}
	}
	return false
}

// Write encodes the model to path, copying left-on-disk payloads from the
// source file. The file is written under a temporary name and renamed, so a
// failed write never leaves a truncated model behind.
//
// External data locations are relative to the model file's directory, so a
// model with external data may only be written into the directory it was
// read from.
func (m *Model) Write(path string) (err error) {
	g := m.Proto.GetGraph()
	if g == nil {
		return errors.New("modelfile: model has no graph")
	}
	if m.HasExternalData() && !sameDir(path, m.path) {
		return fmt.Errorf("%s refers to external weight files relative to %s: write the new model into that directory, not %s",
			m.path, filepath.Dir(m.path), filepath.Dir(path))
	}
	var src *os.File
	if len(m.onDisk) > 0 {
		if src, err = m.openUnchangedSource(); err != nil {
			return err
		}
		defer src.Close()
	}

	m.Proto.Graph = nil
	head, err := proto.Marshal(m.Proto)
	m.Proto.Graph = g
	if err != nil {
		return fmt.Errorf("encoding model: %w", err)
	}
	inits := g.Initializer
	g.Initializer = nil
	graphRest, err := proto.Marshal(g)
	g.Initializer = inits
	if err != nil {
		return fmt.Errorf("encoding graph: %w", err)
	}
	inline := make([][]byte, len(inits))
	graphLen := int64(len(graphRest))
	for i, t := range inits {
		n := int64(0)
		if sp, ok := m.onDisk[t]; ok {
			n = sp.n
		} else {
			if inline[i], err = proto.Marshal(t); err != nil {
				return fmt.Errorf("encoding initializer %q: %w", t.GetName(), err)
			}
			n = int64(len(inline[i]))
		}
		graphLen += int64(protowire.SizeTag(graphInitializerField)) + int64(protowire.SizeBytes(int(n)))
	}

	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	w := bufio.NewWriterSize(tmp, 1<<20)
	var hdr []byte
	hdr = protowire.AppendTag(hdr, modelGraphField, protowire.BytesType)
	hdr = protowire.AppendVarint(hdr, uint64(graphLen))
	for _, b := range [][]byte{head, hdr, graphRest} {
		if _, err = w.Write(b); err != nil {
			return err
		}
	}
	for i, t := range inits {
		sp, onDisk := m.onDisk[t]
		n := int64(len(inline[i]))
		if onDisk {
			n = sp.n
		}
		hdr = protowire.AppendTag(hdr[:0], graphInitializerField, protowire.BytesType)
		hdr = protowire.AppendVarint(hdr, uint64(n))
		if _, err = w.Write(hdr); err != nil {
			return err
		}
		if !onDisk {
			if _, err = w.Write(inline[i]); err != nil {
				return err
			}
			continue
		}
		if _, err = io.Copy(w, io.NewSectionReader(src, sp.off, sp.n)); err != nil {
			return fmt.Errorf("copying initializer %q from %s: %w", t.GetName(), m.path, err)
		}
	}
	if err = w.Flush(); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// openUnchangedSource reopens the source file, refusing if it changed since
// Read: the recorded payload offsets would then point at other bytes.
func (m *Model) openUnchangedSource() (*os.File, error) {
	f, err := os.Open(m.path)
	if err != nil {
		return nil, fmt.Errorf("reopening %s to copy its weights: %w", m.path, err)
	}
	st, err := f.Stat()
	if err == nil && (st.Size() != m.stat.Size() || !st.ModTime().Equal(m.stat.ModTime())) {
		err = fmt.Errorf("%s changed since it was read; read it again before writing", m.path)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func sameDir(a, b string) bool {
	da, errA := filepath.Abs(filepath.Dir(a))
	db, errB := filepath.Abs(filepath.Dir(b))
	return errA == nil && errB == nil && da == db
}

// fieldReader decodes protobuf field headers at given offsets of a file.
type fieldReader struct {
	r    io.ReaderAt
	path string
}

// fieldHeader is one decoded field: its number and wire type, where its
// value starts, how long the value is, and where the next field starts.
type fieldHeader struct {
	num            protowire.Number
	typ            protowire.Type
	valOff, valLen int64
	next           int64
}

// maxHeader is the longest tag plus length prefix protobuf can encode: two
// varints of at most 10 bytes each.
const maxHeader = 2 * 10

func (r *fieldReader) header(off, end int64) (fieldHeader, error) {
	var buf [maxHeader]byte
	n := int64(len(buf))
	if end-off < n {
		n = end - off
	}
	if _, err := r.r.ReadAt(buf[:n], off); err != nil && !errors.Is(err, io.EOF) {
		return fieldHeader{}, fmt.Errorf("%s: reading at byte %d: %w", r.path, off, err)
	}
	b := buf[:n]
	num, typ, tagLen := protowire.ConsumeTag(b)
	if tagLen < 0 {
		return fieldHeader{}, r.corrupt(off, protowire.ParseError(tagLen))
	}
	h := fieldHeader{num: num, typ: typ, valOff: off + int64(tagLen)}
	switch typ {
	case protowire.VarintType:
		_, m := protowire.ConsumeVarint(b[tagLen:])
		if m < 0 {
			return fieldHeader{}, r.corrupt(off, protowire.ParseError(m))
		}
		h.valLen = int64(m)
	case protowire.Fixed32Type:
		h.valLen = 4
	case protowire.Fixed64Type:
		h.valLen = 8
	case protowire.BytesType:
		l, m := protowire.ConsumeVarint(b[tagLen:])
		if m < 0 {
			return fieldHeader{}, r.corrupt(off, protowire.ParseError(m))
		}
		h.valOff += int64(m)
		if l > uint64(end-h.valOff) {
			return fieldHeader{}, r.corrupt(off, fmt.Errorf("field %d claims %d bytes, only %d left", num, l, end-h.valOff))
		}
		h.valLen = int64(l)
	default:
		return fieldHeader{}, r.corrupt(off, fmt.Errorf("unsupported wire type %d", typ))
	}
	h.next = h.valOff + h.valLen
	if h.next > end {
		return fieldHeader{}, r.corrupt(off, errors.New("field runs past the end of its message"))
	}
	return h, nil
}

func (r *fieldReader) corrupt(off int64, err error) error {
	return fmt.Errorf("%s is not a valid ONNX model file (byte %d): %w", r.path, off, err)
}

// appendRaw appends the file's bytes [from, to) to dst.
func (r *fieldReader) appendRaw(dst []byte, from, to int64) ([]byte, error) {
	n := len(dst)
	dst = append(dst, make([]byte, to-from)...)
	if _, err := r.r.ReadAt(dst[n:], from); err != nil {
		return nil, fmt.Errorf("%s: reading bytes %d–%d: %w", r.path, from, to, err)
	}
	return dst, nil
}

// tensorMetadata decodes a TensorProto record without its payload fields.
func (r *fieldReader) tensorMetadata(start, end int64) (*onnxpb.TensorProto, error) {
	var meta []byte
	for off := start; off < end; {
		fh, err := r.header(off, end)
		if err != nil {
			return nil, err
		}
		if !tensorPayloadFields[fh.num] {
			if meta, err = r.appendRaw(meta, off, fh.next); err != nil {
				return nil, err
			}
		}
		off = fh.next
	}
	t := &onnxpb.TensorProto{}
	if err := proto.Unmarshal(meta, t); err != nil {
		return nil, fmt.Errorf("%s: initializer at byte %d: %w", r.path, start, err)
	}
	return t, nil
}
