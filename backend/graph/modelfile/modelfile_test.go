package modelfile

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"reword/backend/graph/onnxpb"
)

// testModel has embedded initializers of several sizes and encodings, one
// external initializer, metadata and a node.
func testModel() *onnxpb.ModelProto {
	big := make([]byte, 5000)
	for i := range big {
		big[i] = byte(i * 7)
	}
	floats := make([]float32, 3000)
	for i := range floats {
		floats[i] = float32(i) / 3
	}
	return &onnxpb.ModelProto{
		IrVersion:     proto.Int64(8),
		ProducerName:  proto.String("modelfile test"),
		OpsetImport:   []*onnxpb.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(14)}},
		MetadataProps: []*onnxpb.StringStringEntryProto{{Key: proto.String("k"), Value: proto.String("v")}},
		Graph: &onnxpb.GraphProto{
			Name: proto.String("g"),
			Node: []*onnxpb.NodeProto{{Name: proto.String("add"), OpType: proto.String("Add"), Input: []string{"x", "raw"}, Output: []string{"y"}}},
			Initializer: []*onnxpb.TensorProto{
				{Name: proto.String("raw"), DataType: proto.Int32(int32(onnxpb.TensorProto_UINT8)), Dims: []int64{5000}, RawData: big},
				{Name: proto.String("small"), DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), Dims: []int64{3}, Int64Data: []int64{1, -1, 4}},
				{Name: proto.String("floats"), DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), Dims: []int64{3000}, FloatData: floats},
				{Name: proto.String("ext"), DataType: proto.Int32(int32(onnxpb.TensorProto_FLOAT)), Dims: []int64{2},
					DataLocation: onnxpb.TensorProto_EXTERNAL.Enum(),
					ExternalData: []*onnxpb.StringStringEntryProto{{Key: proto.String("location"), Value: proto.String("weights.pb")}}},
			},
		},
	}
}

func write(t *testing.T, m *onnxpb.ModelProto, path string) {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRoundTripLeavesLargePayloadsOnDisk(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "model.onnx")
	orig := testModel()
	write(t, orig, src)

	m, err := ReadWithOptions(src, Options{InlineLimit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	inits := m.Proto.Graph.Initializer
	if len(inits) != 4 {
		t.Fatalf("%d initializers, want 4", len(inits))
	}
	if !m.PayloadOnDisk(inits[0]) || len(inits[0].RawData) != 0 || inits[0].GetName() != "raw" || inits[0].GetDims()[0] != 5000 {
		t.Errorf("large raw initializer: on disk %v, %d payload bytes in memory, %v", m.PayloadOnDisk(inits[0]), len(inits[0].RawData), inits[0])
	}
	if !m.PayloadOnDisk(inits[2]) || len(inits[2].FloatData) != 0 {
		t.Errorf("large float_data initializer was decoded")
	}
	if m.PayloadOnDisk(inits[1]) || len(inits[1].Int64Data) != 3 {
		t.Errorf("small initializer not decoded: %v", inits[1])
	}
	if m.Proto.GetProducerName() != "modelfile test" || m.Proto.Graph.Node[0].GetName() != "add" || !m.HasExternalData() {
		t.Errorf("model fields lost: %v", m.Proto)
	}

	// Edit the graph, write, and compare with the same edit on a full decode.
	edit := func(p *onnxpb.ModelProto) {
		p.Graph.Node = append(p.Graph.Node, &onnxpb.NodeProto{Name: proto.String("neg"), OpType: proto.String("Neg"), Input: []string{"y"}, Output: []string{"z"}})
		p.Graph.Initializer = append(p.Graph.Initializer, &onnxpb.TensorProto{Name: proto.String("new"), DataType: proto.Int32(int32(onnxpb.TensorProto_INT64)), Dims: []int64{1}, Int64Data: []int64{9}})
	}
	edit(m.Proto)
	dst := filepath.Join(dir, "model.p2p.onnx")
	if err := m.Write(dst); err != nil {
		t.Fatal(err)
	}
	edit(orig)
	b, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	got := &onnxpb.ModelProto{}
	if err := proto.Unmarshal(b, got); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, orig) {
		t.Fatalf("written model differs from the edited original:\n%v\n%v", got, orig)
	}
	// No temporary file is left behind.
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("directory holds %d files, want 2", len(entries))
	}
}

func TestWriteRefusesChangedSource(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "model.onnx")
	write(t, testModel(), src)
	m, err := ReadWithOptions(src, Options{InlineLimit: 100})
	if err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(src, later, later); err != nil {
		t.Fatal(err)
	}
	if err := m.Write(filepath.Join(dir, "out.onnx")); err == nil || !strings.Contains(err.Error(), "changed since it was read") {
		t.Fatalf("write after the source changed: %v", err)
	}
}

func TestWriteKeepsExternalDataBesideTheModel(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "model.onnx")
	write(t, testModel(), src)
	m, err := Read(src)
	if err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	if err := m.Write(filepath.Join(other, "model.onnx")); err == nil || !strings.Contains(err.Error(), "external weight files") {
		t.Fatalf("write into another directory: %v", err)
	}
}

func TestReadRejectsBadFiles(t *testing.T) {
	dir := t.TempDir()
	good, err := proto.Marshal(testModel())
	if err != nil {
		t.Fatal(err)
	}
	noGraph, _ := proto.Marshal(&onnxpb.ModelProto{IrVersion: proto.Int64(8)})
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"truncated", good[:len(good)-10], "not a valid ONNX model file"},
		{"text", []byte("this is not a model\n"), "not"},
		{"no graph", noGraph, "has no graph"},
		{"empty", nil, "has no graph"},
	} {
		path := filepath.Join(dir, c.name+".onnx")
		if err := os.WriteFile(path, c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadWithOptions(path, Options{InlineLimit: 100}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error containing %q", c.name, err, c.want)
		}
	}
	if _, err := Read(dir); err == nil || !strings.Contains(err.Error(), "is a directory") {
		t.Errorf("directory: %v", err)
	}
	if _, err := ReadWithOptions(filepath.Join(dir, "x"), Options{InlineLimit: -1}); err == nil {
		t.Error("negative inline limit accepted")
	}
}

// TestUneditedWriteDecodesTheSame: reading and writing without an
// edit reproduces a model that decodes to the same message.
func TestUneditedWriteDecodesTheSame(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "model.onnx")
	write(t, testModel(), src)
	m, err := ReadWithOptions(src, Options{InlineLimit: 100})
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, "copy.onnx")
	if err := m.Write(dst); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(src)
	b, _ := os.ReadFile(dst)
	x, y := &onnxpb.ModelProto{}, &onnxpb.ModelProto{}
	if err := proto.Unmarshal(a, x); err != nil {
		t.Fatal(err)
	}
	if err := proto.Unmarshal(b, y); err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(x, y) {
		t.Fatal("copy decodes differently")
	}
	if !bytes.Contains(b, x.Graph.Initializer[0].RawData) {
		t.Fatal("raw payload not copied verbatim")
	}
}
