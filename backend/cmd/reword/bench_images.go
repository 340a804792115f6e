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

	"reword/backend/diffusion"
	"reword/models/tiny/eval"
	"reword/models/tiny/scene"
)

// imageFolder is where a benchmark's -images flag writes its images, one
// PNG each, and an index.tsv with one row per image saying what the
// evaluator found, so that a person (or another checker) can check the
// verdicts image by image. It never overwrites a file: a folder that
// already holds a run is refused. A nil folder writes nothing.
type imageFolder struct {
	dir   string
	index *os.File
	w     *bufio.Writer
}

// newImageFolder creates dir if needed and starts its index.tsv with the
// given column names.
func newImageFolder(dir string, columns ...string) (*imageFolder, error) {
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
	s := &imageFolder{dir: dir, index: f, w: bufio.NewWriter(f)}
	s.w.WriteString(strings.Join(columns, "\t") + "\n")
	return s, nil
}

// writePNG writes img as name, which must not exist yet.
func (s *imageFolder) writePNG(name string, img image.Image) error {
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
	return nil
}

// row appends one row to the index.
func (s *imageFolder) row(cells ...string) error {
	_, err := s.w.WriteString(strings.Join(cells, "\t") + "\n")
	return err
}

// close flushes and closes the index; later calls do nothing.
func (s *imageFolder) close() error {
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

// modelImageColumns are bench model's index columns. The judged columns
// hold "-" where nothing was judged: no object found, or no background
// named. The *_right columns are the verdicts bench model counts, "yes" or
// "no" where its row counts the image and "-" where it does not (the prompt
// names no size, position or background), so that two models' runs on the
// same prompts and seeds pair image by image (train/paired.py).
var modelImageColumns = []string{"file", "prompt", "seed", "shape", "colour", "size", "position", "background",
	"colour_right", "shape_right", "size_right", "position_right", "background_right"}

// addGenerated writes bench model's image of prompt c (the prompt-th
// prompt, its k-th seed) and its row of the index.
func (s *imageFolder) addGenerated(prompt, k int, seed uint64, c scene.Caption, img image.Image, j eval.Judgement) error {
	if s == nil {
		return nil
	}
	name := fmt.Sprintf("p%03d-k%d.png", prompt, k)
	if err := s.writePNG(name, img); err != nil {
		return err
	}
	shape, colour, size, position := "-", "-", "-", "-"
	if o := j.Object; o != nil {
		shape, colour, size, position = o.Shape.String(), o.Colour.String(), o.Size.String(), o.Position.String()
	}
	background, backgroundRight := "-", "-"
	if j.BackgroundJudged {
		background, backgroundRight = j.Background.String(), yesNo(j.Background == c.Background)
	}
	sizeRight, positionRight := "-", "-"
	if j.NamesSize {
		sizeRight = yesNo(j.Size)
	}
	if j.NamesPosition {
		positionRight = yesNo(j.Position)
	}
	return s.row(name, c.Text, fmt.Sprint(seed), shape, colour, size, position, background,
		yesNo(j.Colour), yesNo(j.Shape), sizeRight, positionRight, backgroundRight)
}

// yesNo is how the index files write a verdict.
func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

// editImageColumns are bench edit's index columns: one row per scored
// edit (each method of each edit at each seed). file is the edited image,
// source_file the source it is scored against (a reweight's baseline is
// the source itself).
var editImageColumns = []string{"file", "source_file", "kind", "prompts", "source", "target", "seed", "method",
	"success", "mask_iou", "background_psnr", "background_changed", "background", "edited_background", "broken", "background_changed_beyond_edge"}

// editWriter writes the images of one edit at one seed: the source once,
// then each method's edited image.
type editWriter struct {
	folder  *imageFolder
	prefix  string
	written map[string]bool // the source files written
}

// editWriter returns the writer of the pair-th edit's k-th seed, nil when
// s is nil.
func (s *imageFolder) editWriter(pair, k int) *editWriter {
	if s == nil {
		return nil
	}
	return &editWriter{folder: s, prefix: fmt.Sprintf("e%03d-s%d", pair, k), written: map[string]bool{}}
}

// methodFileNames name each method's edited image.
var methodFileNames = map[string]string{methodP2P: "p2p", methodP2PRefine: "p2p-refine", methodBaseline: "baseline", methodDrawn: "drawn", methodSpliced: "spliced"}

// add writes method's edited image res (nil: the source is the result)
// and its row. A nil writer does nothing.
func (w *editWriter) add(be *benchEdit, seed uint64, method string, src diffusion.Image, res *diffusion.Image, sc editScore) error {
	if w == nil {
		return nil
	}
	sourceFile := w.prefix + "-source.png"
	if drawnMethod(method) {
		// A drawn edit has a drawn source of its own.
		sourceFile = w.prefix + "-drawn-source.png"
	}
	if !w.written[sourceFile] {
		if err := w.folder.writePNG(sourceFile, src.NRGBA()); err != nil {
			return err
		}
		w.written[sourceFile] = true
	}
	file := sourceFile
	if res != nil {
		file = w.prefix + "-" + methodFileNames[method] + ".png"
		if err := w.folder.writePNG(file, res.NRGBA()); err != nil {
			return err
		}
	}
	return w.folder.row(file, sourceFile, be.kind, be.set, be.source, be.target, fmt.Sprint(seed), method,
		yesNo(sc.success), fmt.Sprintf("%.3f", sc.iou), fmt.Sprintf("%.1f", sc.bgPSNR), yesNo(sc.bgChanged()),
		sc.srcBackground.String(), sc.background.String(), yesNo(sc.broken), yesNo(sc.bgChangedBeyondEdge()))
}
