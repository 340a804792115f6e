package main

import (
	"bufio"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"

	"reword/models/tiny/eval"
	"reword/models/tiny/scene"
)

// imageSink writes bench model's generated images, one PNG each, and an
// index.tsv saying what the evaluator found in each, so that a person (or
// another checker) can check the verdicts image by image. It never
// overwrites a file: a folder that already holds a run is refused.
type imageSink struct {
	dir   string
	index *os.File
	w     *bufio.Writer
}

// indexHeader names index.tsv's columns. The judged columns hold "-" where
// nothing was judged: no object found, or no background named.
const indexHeader = "file\tprompt\tseed\tshape\tcolour\tsize\tposition\tbackground\n"

func newImageSink(dir string) (*imageSink, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("--images: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "index.tsv"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("--images: %s already holds an index.tsv (an earlier run's images): name an empty folder", dir)
	}
	if err != nil {
		return nil, fmt.Errorf("--images: %w", err)
	}
	s := &imageSink{dir: dir, index: f, w: bufio.NewWriter(f)}
	s.w.WriteString(indexHeader)
	return s, nil
}

// add writes the image of prompt c (the prompt-th prompt, its k-th seed) and
// its row of the index. A nil sink does nothing.
func (s *imageSink) add(prompt, k int, seed uint64, c scene.Caption, img image.Image, j eval.Judgement) error {
	if s == nil {
		return nil
	}
	name := fmt.Sprintf("p%03d-k%d.png", prompt, k)
	f, err := os.OpenFile(filepath.Join(s.dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("--images: %w", err)
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return fmt.Errorf("--images: %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--images: %w", err)
	}
	shape, colour, size, position := "-", "-", "-", "-"
	if o := j.Object; o != nil {
		shape, colour, size, position = o.Shape.String(), o.Colour.String(), o.Size.String(), o.Position.String()
	}
	background := "-"
	if j.BackgroundJudged {
		background = j.Background.String()
	}
	_, err = s.w.WriteString(strings.Join([]string{name, c.Text, fmt.Sprint(seed), shape, colour, size, position, background}, "\t") + "\n")
	return err
}

// close flushes and closes the index; later calls do nothing. A nil sink
// does nothing.
func (s *imageSink) close() error {
	if s == nil || s.index == nil {
		return nil
	}
	err := s.w.Flush()
	if cerr := s.index.Close(); err == nil {
		err = cerr
	}
	s.index = nil
	if err != nil {
		return fmt.Errorf("--images: index.tsv: %w", err)
	}
	return nil
}
