// Package npy reads and writes the few NumPy .npy arrays the tiny model's
// training tools exchange with the Python trainer: C-order, little-endian,
// format version 1.0.
package npy

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
)

const magic = "\x93NUMPY"

// Write writes data, already in dtype's little-endian layout, as an array
// of the given NumPy dtype ("|u1", "<i4", ...) and shape.
func Write(path, dtype string, shape []int, data []byte) error {
	dims := make([]string, len(shape))
	for i, d := range shape {
		dims[i] = strconv.Itoa(d)
	}
	shapeText := strings.Join(dims, ", ")
	if len(shape) == 1 {
		shapeText += ","
	}
	header := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", dtype, shapeText)
	// Magic (6) + version (2) + header length (2) + header + '\n', padded
	// with spaces to a multiple of 64 bytes as NumPy writes it.
	total := 10 + len(header) + 1
	header += strings.Repeat(" ", (64-total%64)%64) + "\n"
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	w.WriteString(magic + "\x01\x00")
	binary.Write(w, binary.LittleEndian, uint16(len(header)))
	w.WriteString(header)
	w.Write(data)
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// WriteInt32 writes v as an int32 array of the given shape.
func WriteInt32(path string, shape []int, v []int32) error {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], uint32(x))
	}
	return Write(path, "<i4", shape, b)
}

var (
	descrRE = regexp.MustCompile(`'descr':\s*'([^']*)'`)
	orderRE = regexp.MustCompile(`'fortran_order':\s*(True|False)`)
	shapeRE = regexp.MustCompile(`'shape':\s*\(([^)]*)\)`)
)

// ReadUint8 reads a uint8 array ("|u1"), as the trainer writes images.
func ReadUint8(path string) (shape []int, data []byte, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	pre := make([]byte, 10)
	if _, err := io.ReadFull(r, pre); err != nil || string(pre[:6]) != magic {
		return nil, nil, fmt.Errorf("npy: %s is not a .npy file", path)
	}
	if pre[6] != 1 {
		return nil, nil, fmt.Errorf("npy: %s has format version %d; want 1", path, pre[6])
	}
	header := make([]byte, binary.LittleEndian.Uint16(pre[8:]))
	if _, err := io.ReadFull(r, header); err != nil {
		return nil, nil, fmt.Errorf("npy: %s: truncated header", path)
	}
	h := string(header)
	d, o, s := descrRE.FindStringSubmatch(h), orderRE.FindStringSubmatch(h), shapeRE.FindStringSubmatch(h)
	if d == nil || o == nil || s == nil {
		return nil, nil, fmt.Errorf("npy: %s: unreadable header %q", path, h)
	}
	if d[1] != "|u1" || o[1] != "False" {
		return nil, nil, fmt.Errorf("npy: %s holds dtype %s (fortran order %s); want |u1 in C order", path, d[1], o[1])
	}
	n := 1
	for _, p := range strings.Split(s[1], ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 {
			return nil, nil, fmt.Errorf("npy: %s: bad shape %q", path, s[1])
		}
		shape = append(shape, v)
		n *= v
	}
	data = make([]byte, n)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, nil, fmt.Errorf("npy: %s: %d bytes of data expected: %v", path, n, err)
	}
	return shape, data, nil
}
