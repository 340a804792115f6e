// Command labelsheet turns generated images into sheets a person labels by
// eye, and the person's labels into a labelled set the evaluator's tests
// read (models/tiny/eval/testdata/labelled).
//
//	labelsheet sheets -images DIR -suffix -k1.png -out SHEETS [-seed 1]
//	    reads DIR/index.tsv (`reword bench model -images DIR`), takes the
//	    images whose file name ends in the suffix, shuffles them and writes
//	    SHEETS/sheet-NN.png (30 numbered tiles each, 3× enlarged, nothing
//	    else: no prompt, no verdict) and SHEETS/order.tsv (tile number →
//	    file). SHEETS must not exist yet.
//	labelsheet assemble -images DIR -sheets SHEETS -labels FILE -out SET [-name labels]
//	    reads FILE, one label per tile number in order (whitespace
//	    separated; circle, square, triangle, star, ring or unclear), and
//	    writes SET/generated.png (the images 10 to a row, in index.tsv's
//	    order) and SET/NAME.tsv (tile, prompt, seed, label). SET must not
//	    hold NAME.tsv yet; a generated.png it holds already must be the one
//	    assemble would write (a second labeller's labels of the same set).
//	labelsheet unpack -set SET -out DIR
//	    the way back: writes a labelled set's images as bench model writes
//	    them (DIR/tNNN.png and an index.tsv of their prompts and seeds, no
//	    labels), so that a second labeller gets sheets of the same images
//	    (with another -seed) without running the model again. DIR must not
//	    exist yet.
//
// A person labels the largest object of each tile as the shape they see,
// or unclear; the evaluator's tests then compare its verdicts with theirs.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"reword/models/tiny/scene"
)

// Sheet layout: tiles of 64 px images enlarged 3×, a 16 px caption strip
// above each for its number.
const (
	scale     = 3
	tile      = scene.ImageSize * scale
	caption   = 16
	gap       = 8
	sheetCols = 6
	sheetRows = 5
	perGrid   = 10 // images per row of a set's generated.png
)

// labelsName is what a set's labels file may be called (without .tsv).
var labelsName = regexp.MustCompile(`^labels(-[a-z0-9][a-z0-9-]*)?$`)

// labels are what a person may call a tile.
var labels = map[string]bool{"circle": true, "square": true, "triangle": true, "star": true, "ring": true, "unclear": true}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "labelsheet:", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("want a subcommand: sheets, assemble or unpack")
	}
	fs := flag.NewFlagSet("labelsheet "+args[0], flag.ContinueOnError)
	images := fs.String("images", "", "folder written by `reword bench model -images` (required)")
	switch args[0] {
	case "sheets":
		suffix := fs.String("suffix", ".png", "take the images whose file name ends in this (e.g. -k1.png: each prompt's second seed)")
		out := fs.String("out", "", "folder for the sheets, created (required)")
		seed := fs.Uint64("seed", 1, "seed of the shuffle")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *images == "" || *out == "" {
			return errors.New("sheets: -images and -out are required")
		}
		return writeSheets(*images, *suffix, *out, *seed)
	case "assemble":
		sheets := fs.String("sheets", "", "folder written by labelsheet sheets (required)")
		labelFile := fs.String("labels", "", "the person's labels, one per tile number in order (required)")
		out := fs.String("out", "", "folder of the labelled set (required)")
		name := fs.String("name", "labels", "the labels' file in the set, without .tsv: labels for the first labeller, e.g. labels-second for another")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *images == "" || *sheets == "" || *labelFile == "" || *out == "" {
			return errors.New("assemble: -images, -sheets, -labels and -out are required")
		}
		if !labelsName.MatchString(*name) {
			return fmt.Errorf("assemble: -name %q must be labels or labels-WORD (letters, digits, hyphens)", *name)
		}
		return assemble(*images, *sheets, *labelFile, *out, *name)
	case "unpack":
		set := fs.String("set", "", "a labelled set: generated.png and labels.tsv (required)")
		out := fs.String("out", "", "folder for the images and index.tsv, created (required)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *set == "" || *out == "" {
			return errors.New("unpack: -set and -out are required")
		}
		return unpack(*set, *out)
	}
	return fmt.Errorf("unknown subcommand %q: want sheets, assemble or unpack", args[0])
}

// indexRow is one row of bench model's index.tsv.
type indexRow struct{ file, prompt, seed string }

func readIndex(dir string) ([]indexRow, error) {
	path := filepath.Join(dir, "index.tsv")
	header, lines, err := readTSV(path)
	if err != nil {
		return nil, err
	}
	if len(header) < 3 || header[0] != "file" || header[1] != "prompt" || header[2] != "seed" {
		return nil, fmt.Errorf("%s: header %q is not bench model's (file, prompt, seed, …)", path, strings.Join(header, "\t"))
	}
	rows := make([]indexRow, len(lines))
	for k, cols := range lines {
		if len(cols) < 3 {
			return nil, fmt.Errorf("%s line %d: %d columns, want at least 3", path, k+2, len(cols))
		}
		rows[k] = indexRow{cols[0], cols[1], cols[2]}
	}
	return rows, nil
}

// readTSV reads a tab-separated file: its first line's columns and every
// later line's.
func readTSV(path string) (header []string, rows [][]string, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for line := 1; sc.Scan(); line++ {
		cols := strings.Split(sc.Text(), "\t")
		if line == 1 {
			header = cols
		} else {
			rows = append(rows, cols)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	return header, rows, nil
}

// readImage decodes one generated image, which must be scene-sized.
func readImage(path string) (image.Image, error) {
	img, err := decodePNG(path)
	if err != nil {
		return nil, err
	}
	if b := img.Bounds(); b.Dx() != scene.ImageSize || b.Dy() != scene.ImageSize {
		return nil, fmt.Errorf("%s is %dx%d, want %dx%d", path, b.Dx(), b.Dy(), scene.ImageSize, scene.ImageSize)
	}
	return img, nil
}

func selectRows(dir, suffix string) ([]indexRow, error) {
	all, err := readIndex(dir)
	if err != nil {
		return nil, err
	}
	var rows []indexRow
	for _, r := range all {
		if strings.HasSuffix(r.file, suffix) {
			rows = append(rows, r)
		}
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("no image in %s/index.tsv ends in %q", dir, suffix)
	}
	return rows, nil
}

func writeSheets(dir, suffix, out string, seed uint64) error {
	rows, err := selectRows(dir, suffix)
	if err != nil {
		return err
	}
	if err := os.Mkdir(out, 0o755); err != nil {
		return fmt.Errorf("-out: %w (name a folder that does not exist yet)", err)
	}
	rand.New(rand.NewPCG(seed, 0)).Shuffle(len(rows), func(i, j int) { rows[i], rows[j] = rows[j], rows[i] })
	var order strings.Builder
	order.WriteString("tile\tfile\n")
	per := sheetCols * sheetRows
	for s := 0; s*per < len(rows); s++ {
		sheet := image.NewRGBA(image.Rect(0, 0, sheetCols*(tile+gap), sheetRows*(tile+caption+gap)))
		draw.Draw(sheet, sheet.Bounds(), image.NewUniform(color.RGBA{255, 0, 255, 255}), image.Point{}, draw.Src)
		for k := 0; k < per && s*per+k < len(rows); k++ {
			n := s*per + k
			img, err := readImage(filepath.Join(dir, rows[n].file))
			if err != nil {
				return err
			}
			x, y := (k%sheetCols)*(tile+gap), (k/sheetCols)*(tile+caption+gap)
			d := font.Drawer{Dst: sheet, Src: image.NewUniform(color.Black), Face: basicfont.Face7x13, Dot: fixed.P(x+2, y+12)}
			d.DrawString(strconv.Itoa(n))
			for py := 0; py < tile; py++ {
				for px := 0; px < tile; px++ {
					sheet.Set(x+px, y+caption+py, img.At(px/scale, py/scale))
				}
			}
			fmt.Fprintf(&order, "%d\t%s\n", n, rows[n].file)
		}
		if err := writePNG(filepath.Join(out, fmt.Sprintf("sheet-%02d.png", s)), sheet); err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(out, "order.tsv"), []byte(order.String()), 0o644)
}

func assemble(dir, sheets, labelFile, out, name string) error {
	order, err := readOrder(filepath.Join(sheets, "order.tsv"))
	if err != nil {
		return err
	}
	text, err := os.ReadFile(labelFile)
	if err != nil {
		return err
	}
	given := strings.Fields(string(text))
	if len(given) != len(order) {
		return fmt.Errorf("%s holds %d labels for %d tiles", labelFile, len(given), len(order))
	}
	labelOf := map[string]string{}
	for n, l := range given {
		if !labels[l] {
			return fmt.Errorf("%s: tile %d's label %q is none of circle, square, triangle, star, ring, unclear", labelFile, n, l)
		}
		labelOf[order[n]] = l
	}
	all, err := readIndex(dir)
	if err != nil {
		return err
	}
	var rows []indexRow
	for _, r := range all {
		if _, ok := labelOf[r.file]; ok {
			rows = append(rows, r)
		}
	}
	if len(rows) != len(order) {
		return fmt.Errorf("%s/index.tsv lists %d of the %d labelled files", dir, len(rows), len(order))
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	labelsPath := filepath.Join(out, name+".tsv")
	if _, err := os.Stat(labelsPath); err == nil {
		return fmt.Errorf("%s already holds %s.tsv: name another folder or -name", out, name)
	}
	s := scene.ImageSize
	grid := image.NewNRGBA(image.Rect(0, 0, perGrid*s, (len(rows)+perGrid-1)/perGrid*s))
	var tsv strings.Builder
	tsv.WriteString("tile\tprompt\tseed\tlabel\n")
	for k, r := range rows {
		img, err := readImage(filepath.Join(dir, r.file))
		if err != nil {
			return err
		}
		at := image.Pt((k%perGrid)*s, (k/perGrid)*s)
		draw.Draw(grid, image.Rectangle{at, at.Add(image.Pt(s, s))}, img, img.Bounds().Min, draw.Src)
		fmt.Fprintf(&tsv, "%d\t%s\t%s\t%s\n", k, r.prompt, r.seed, labelOf[r.file])
	}
	gridPath := filepath.Join(out, "generated.png")
	switch held, err := decodePNG(gridPath); {
	case errors.Is(err, os.ErrNotExist):
		if err := writePNG(gridPath, grid); err != nil {
			return err
		}
	case err != nil:
		return err
	case !sameImage(held, grid):
		// Another labeller's labels must be of the same images.
		return fmt.Errorf("%s holds other images than %s's labelled ones (or in another order): these labels belong to another set", gridPath, dir)
	}
	return os.WriteFile(labelsPath, []byte(tsv.String()), 0o644)
}

// decodePNG decodes a PNG file; an error wraps os.ErrNotExist when there is
// none.
func decodePNG(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return img, nil
}

// sameImage reports whether two images have the same size and colours.
func sameImage(a, b image.Image) bool {
	ab, bb := a.Bounds(), b.Bounds()
	if ab.Size() != bb.Size() {
		return false
	}
	for y := 0; y < ab.Dy(); y++ {
		for x := 0; x < ab.Dx(); x++ {
			r1, g1, b1, a1 := a.At(ab.Min.X+x, ab.Min.Y+y).RGBA()
			r2, g2, b2, a2 := b.At(bb.Min.X+x, bb.Min.Y+y).RGBA()
			if r1 != r2 || g1 != g2 || b1 != b2 || a1 != a2 {
				return false
			}
		}
	}
	return true
}

// unpack writes a labelled set's images and an index.tsv of their prompts
// and seeds (not their labels) into out, as bench model -images does.
func unpack(set, out string) error {
	grid, err := decodePNG(filepath.Join(set, "generated.png"))
	if err != nil {
		return err
	}
	rows, err := readSetRows(filepath.Join(set, "labels.tsv"))
	if err != nil {
		return err
	}
	s := scene.ImageSize
	if b := grid.Bounds(); b.Dx() != perGrid*s || b.Dy() != (len(rows)+perGrid-1)/perGrid*s {
		return fmt.Errorf("%s/generated.png is %dx%d: not %d images %d to a row", set, b.Dx(), b.Dy(), len(rows), perGrid)
	}
	if err := os.Mkdir(out, 0o755); err != nil {
		return fmt.Errorf("-out: %w (name a folder that does not exist yet)", err)
	}
	var index strings.Builder
	index.WriteString("file\tprompt\tseed\n")
	for k, r := range rows {
		img := image.NewNRGBA(image.Rect(0, 0, s, s))
		at := grid.Bounds().Min.Add(image.Pt((k%perGrid)*s, (k/perGrid)*s))
		draw.Draw(img, img.Bounds(), grid, at, draw.Src)
		name := fmt.Sprintf("t%03d.png", k)
		if err := writePNG(filepath.Join(out, name), img); err != nil {
			return err
		}
		fmt.Fprintf(&index, "%s\t%s\t%s\n", name, r.prompt, r.seed)
	}
	return os.WriteFile(filepath.Join(out, "index.tsv"), []byte(index.String()), 0o644)
}

// readSetRows reads a set's labels.tsv for its prompts and seeds, in tile order.
func readSetRows(path string) ([]indexRow, error) {
	header, lines, err := readTSV(path)
	if err != nil {
		return nil, err
	}
	if strings.Join(header, " ") != "tile prompt seed label" {
		return nil, fmt.Errorf("%s: header %q, want tile, prompt, seed, label", path, strings.Join(header, "\t"))
	}
	if len(lines) == 0 {
		return nil, fmt.Errorf("%s lists no tile", path)
	}
	rows := make([]indexRow, len(lines))
	for k, cols := range lines {
		if len(cols) != 4 || cols[0] != strconv.Itoa(k) {
			return nil, fmt.Errorf("%s line %d: %q is not tile %d's prompt, seed and label", path, k+2, strings.Join(cols, "\t"), k)
		}
		rows[k] = indexRow{file: cols[0], prompt: cols[1], seed: cols[2]}
	}
	return rows, nil
}

// readOrder reads a sheets folder's order.tsv: the file of each tile number.
func readOrder(path string) ([]string, error) {
	_, lines, err := readTSV(path)
	if err != nil {
		return nil, err
	}
	files := make([]string, len(lines))
	for k, cols := range lines {
		if len(cols) != 2 || cols[0] != strconv.Itoa(k) {
			return nil, fmt.Errorf("%s line %d: %q is not tile %d and its file", path, k+2, strings.Join(cols, "\t"), k)
		}
		files[k] = cols[1]
	}
	return files, nil
}

func writePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	// Best compression: labelled sets are committed.
	if err := (&png.Encoder{CompressionLevel: png.BestCompression}).Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
