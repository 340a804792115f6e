package sdtest

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/protobuf/proto"

	"reword/backend/graph/modelfile"
	"reword/backend/graph/onnxpb"
)

// externalFile is the external data file Optimum writes beside a
// model.onnx over protobuf's 2 GB limit.
const externalFile = "model.onnx_data"

// minExternalBytes: smaller weights stay inside model.onnx, as torch
// leaves them.
const minExternalBytes = 1024

// externalData streams weights into a model's external data file as they
// are drawn, so that a full-size UNet (3.4 GB of float32) is never held in
// memory.
type externalData struct {
	f   *os.File
	w   *bufio.Writer
	off int64
	err error
}

func newExternalData(path string) (*externalData, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &externalData{f: f, w: bufio.NewWriterSize(f, 1<<20)}, nil
}

// store writes raw and makes t refer to it; it returns false (t keeps raw)
// for small tensors.
func (e *externalData) store(t *onnxpb.TensorProto, raw []byte) bool {
	if e == nil || len(raw) < minExternalBytes {
		return false
	}
	if _, err := e.w.Write(raw); err != nil && e.err == nil {
		e.err = err
	}
	t.DataLocation = onnxpb.TensorProto_EXTERNAL.Enum()
	t.ExternalData = []*onnxpb.StringStringEntryProto{
		{Key: proto.String("location"), Value: proto.String(externalFile)},
		{Key: proto.String("offset"), Value: proto.String(strconv.FormatInt(e.off, 10))},
		{Key: proto.String("length"), Value: proto.String(strconv.Itoa(len(raw)))},
	}
	e.off += int64(len(raw))
	return true
}

// close flushes the file and reports the first error.
func (e *externalData) close() error {
	if err := e.w.Flush(); err != nil && e.err == nil {
		e.err = err
	}
	if err := e.f.Close(); err != nil && e.err == nil {
		e.err = err
	}
	return e.err
}

// ExternalizeFile moves the embedded weights of the model file at path
// (those of 1 KiB or more, float32 or raw) into model.onnx_data beside it
// and rewrites the file to refer to them, as Optimum saves an export with
// external data. Tests make external-data copies of models that another
// tool wrote embedded this way, such as fp16export's float16 copies.
func ExternalizeFile(path string) error {
	m, err := modelfile.ReadWithOptions(path, modelfile.Options{InlineLimit: math.MaxInt})
	if err != nil {
		return err
	}
	if m.HasExternalData() {
		return fmt.Errorf("sdtest: %s has external weights already", path)
	}
	ext, err := newExternalData(filepath.Join(filepath.Dir(path), externalFile))
	if err != nil {
		return err
	}
	moved := 0
	for _, t := range m.Proto.GetGraph().GetInitializer() {
		raw := t.GetRawData()
		if len(raw) == 0 && len(t.GetFloatData()) > 0 {
			raw = make([]byte, 4*len(t.GetFloatData()))
			for i, v := range t.GetFloatData() {
				binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
			}
		}
		if ext.store(t, raw) {
			t.RawData, t.FloatData = nil, nil
			moved++
		}
	}
	if err := ext.close(); err != nil {
		return fmt.Errorf("sdtest: %s: %w", path, err)
	}
	if moved == 0 {
		return fmt.Errorf("sdtest: %s has no weight of %d bytes or more to move out", path, minExternalBytes)
	}
	raw, err := proto.Marshal(m.Proto)
	if err != nil {
		return fmt.Errorf("sdtest: encoding %s: %w", path, err)
	}
	return writeFile(path, raw)
}
