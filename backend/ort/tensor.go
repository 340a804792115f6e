package ort

import (
	"encoding/binary"
	"fmt"
	"math"

	onnx "github.com/yalue/onnxruntime_go"
)

// Value is a tensor handed to or returned by a session. Values created here
// or returned by Run must be released with Destroy.
type Value = onnx.Value

// Tensor is a tensor whose elements are a Go numeric type; it shares memory
// with the slice it was made from.
type Tensor[T onnx.TensorData] = onnx.Tensor[T]

// DType is an ONNX tensor element type.
type DType int

// The element types Reword's models use.
const (
	Float32 DType = onnx.TensorElementDataTypeFloat
	Float16 DType = onnx.TensorElementDataTypeFloat16
	Float64 DType = onnx.TensorElementDataTypeDouble
	Int32   DType = onnx.TensorElementDataTypeInt32
	Int64   DType = onnx.TensorElementDataTypeInt64
	Uint8   DType = onnx.TensorElementDataTypeUint8
)

func (d DType) String() string {
	switch d {
	case Float32:
		return "float32"
	case Float16:
		return "float16"
	case Float64:
		return "float64"
	case Int32:
		return "int32"
	case Int64:
		return "int64"
	case Uint8:
		return "uint8"
	default:
		return onnx.TensorElementDataType(d).String()
	}
}

// NewTensor wraps data (not copied) as a tensor of the given shape. The
// element count must match the shape exactly.
func NewTensor[T onnx.TensorData](shape []int64, data []T) (*Tensor[T], error) {
	if err := Init(); err != nil {
		return nil, err
	}
	n, err := elementCount(shape)
	if err != nil {
		return nil, err
	}
	if n != int64(len(data)) {
		return nil, fmt.Errorf("tensor shape %v holds %d elements, data has %d", shape, n, len(data))
	}
	return onnx.NewTensor(onnx.NewShape(shape...), data)
}

// NewScalar makes a tensor of rank 0 holding v, for a model input declared
// as a scalar: NewTensor cannot, since onnxruntime_go refuses an empty
// shape. Its value is fixed: onnxruntime_go's Scalar.Set replaces the Go
// slice without updating ONNX Runtime's view of it, so a new value needs a
// new scalar.
func NewScalar[T onnx.TensorData](v T) (Value, error) {
	if err := Init(); err != nil {
		return nil, err
	}
	return onnx.NewScalar(v)
}

// NewFloat16Tensor makes a float16 tensor from float32 values, rounding to
// nearest even; it is how float32 data is fed to an fp16 model.
func NewFloat16Tensor(shape []int64, data []float32) (Value, error) {
	if err := Init(); err != nil {
		return nil, err
	}
	n, err := elementCount(shape)
	if err != nil {
		return nil, err
	}
	if n != int64(len(data)) {
		return nil, fmt.Errorf("tensor shape %v holds %d elements, data has %d", shape, n, len(data))
	}
	raw := make([]byte, 2*len(data))
	for i, f := range data {
		binary.LittleEndian.PutUint16(raw[2*i:], Float32ToFloat16(f))
	}
	return onnx.NewCustomDataTensor(onnx.NewShape(shape...), raw, onnx.TensorElementDataTypeFloat16)
}

func elementCount(shape []int64) (int64, error) {
	n := int64(1)
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("tensor shape %v has a negative dimension", shape)
		}
		if d != 0 && n > math.MaxInt64/d {
			return 0, fmt.Errorf("tensor shape %v is too large", shape)
		}
		n *= d
	}
	return n, nil
}

// Float32Data returns a copy of a float32 or float16 tensor's elements as
// float32, and its shape. The copy stays valid after the value is destroyed.
func Float32Data(v Value) ([]float32, []int64, error) {
	shape := []int64(v.GetShape())
	switch t := v.(type) {
	case *onnx.Tensor[float32]:
		return append([]float32(nil), t.GetData()...), shape, nil
	case *onnx.CustomDataTensor:
		if DType(t.DataType()) != Float16 {
			break
		}
		raw := t.GetData()
		out := make([]float32, len(raw)/2)
		for i := range out {
			out[i] = Float16ToFloat32(binary.LittleEndian.Uint16(raw[2*i:]))
		}
		return out, shape, nil
	}
	return nil, nil, fmt.Errorf("tensor of %s, want float32 or float16", DType(v.DataType()))
}
