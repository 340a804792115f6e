package attnblock

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/protobuf/proto"

	"reword/backend/graph/onnxpb"
)

// Externalize moves the float and float16 initializers of at least minBytes
// into one external data file, location, in dir (the model's directory), the
// way diffusers' exporter writes unet/weights.pb.
func Externalize(m *onnxpb.ModelProto, dir, location string, minBytes int) error {
	f, err := os.Create(filepath.Join(dir, location))
	if err != nil {
		return err
	}
	defer f.Close()
	var off int64
	for _, t := range m.GetGraph().GetInitializer() {
		raw := t.GetRawData()
		if len(raw) == 0 && len(t.GetFloatData()) > 0 {
			raw = make([]byte, 4*len(t.GetFloatData()))
			for i, v := range t.GetFloatData() {
				binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(v))
			}
		}
		if len(raw) < minBytes {
			continue
		}
		if _, err := f.Write(raw); err != nil {
			return err
		}
		t.RawData, t.FloatData = nil, nil
		t.DataLocation = onnxpb.TensorProto_EXTERNAL.Enum()
		t.ExternalData = []*onnxpb.StringStringEntryProto{
			{Key: proto.String("location"), Value: proto.String(location)},
			{Key: proto.String("offset"), Value: proto.String(strconv.FormatInt(off, 10))},
			{Key: proto.String("length"), Value: proto.String(strconv.Itoa(len(raw)))},
		}
		off += int64(len(raw))
	}
	if off == 0 {
		return fmt.Errorf("attnblock: no initializer of %d bytes or more to externalize", minBytes)
	}
	return f.Close()
}

// Save writes a model file.
func Save(m *onnxpb.ModelProto, path string) error {
	b, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
