package sdtest

import (
	"bufio"
	"os"
	"strconv"

	"google.golang.org/protobuf/proto"

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
