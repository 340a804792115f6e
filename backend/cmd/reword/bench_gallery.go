package main

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"os"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"

	"reword/backend/diffusion"
	"reword/models/tiny/eval"
	"reword/models/tiny/scene"
	"reword/shared/edit"
)

func init() {
	registerBench(benchmark{name: "gallery", summary: "a fixed set of edits at seeds 1–8, as a picture with each edit's scores", run: runBenchGallery})
}

// galleryEdits are the gallery's edits. They were fixed before any model
// they are shown on was looked at, and every seed from 1 to 8 is shown:
// the picture is what a user typically gets, not a selection.
var galleryEdits = []struct {
	source, target string
	word           string  // reweighted word (target == source)
	factor         float64 // its factor
	swapTo         scene.Colour
	swapShape      scene.Shape
	kind           string
}{
	{source: "a red circle", target: "a blue circle", kind: kindColour, swapTo: scene.Blue},
	{source: "a red circle on a white background", target: "a blue circle on a white background", kind: kindColour, swapTo: scene.Blue},
	{source: "a green star on the left", target: "a yellow star on the left", kind: kindColour, swapTo: scene.Yellow},
	{source: "a big orange ring at the top on grass", target: "a big white ring at the top on grass", kind: kindColour, swapTo: scene.White},
	{source: "a purple square", target: "a purple triangle", kind: kindShape, swapShape: scene.Triangle},
	{source: "a red circle", target: "a red circle", word: "red", factor: -1, kind: kindSuppress},
}

// gallerySeeds are the seeds every gallery edit runs at.
var gallerySeeds = []uint64{1, 2, 3, 4, 5, 6, 7, 8}

// Layout of the picture, in pixels.
const (
	galleryScale  = 2  // each 64×64 image is drawn this many times larger
	galleryGap    = 8  // between seeds
	galleryTitle  = 18 // height of a row's title line
	galleryNote   = 16 // height of the score line under each pair
	galleryMargin = 10
)

func runBenchGallery(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench gallery", "", stderr)
	ef := addEngineFlags(fs)
	out := fs.String("out", "", "PNG file to write the gallery to (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("unexpected arguments %q", fs.Args())
	}
	if *out == "" {
		return usageError("-out is required: the PNG file to write")
	}
	e, err := ef.load()
	if err != nil {
		return err
	}
	defer e.Close()
	if err := needSceneImages(e); err != nil {
		return err
	}
	rows := make([]galleryRow, len(galleryEdits))
	for i, ge := range galleryEdits {
		be := galleryBenchEdit(i)
		rows[i].title = ge.source + " -> " + ge.target
		if be.reweight() {
			rows[i].title = fmt.Sprintf("%s, %q x%g", ge.source, ge.word, ge.factor)
		}
		for _, seed := range gallerySeeds {
			spec := edit.Spec{Source: be.source, Targets: []string{be.target}, Seed: &seed}
			if be.reweight() {
				spec.Reweights = map[string]float64{be.word: be.factor}
			}
			res, err := e.Edit(ctx, spec, diffusion.RunOptions{}, nil)
			if err != nil {
				return fmt.Errorf("gallery edit %q, seed %d: %w", rows[i].title, seed, err)
			}
			s, err := score(be, res.Images[0], res.Images[1])
			if err != nil {
				return err
			}
			rows[i].cells = append(rows[i].cells, galleryCell{src: res.Images[0].NRGBA(), edited: res.Images[1].NRGBA(), score: s})
		}
		if !*ef.json {
			fmt.Fprintln(stdout, rows[i].summary())
		}
	}
	if err := writeGallery(*out, rows); err != nil {
		return err
	}
	if *ef.json {
		return writeGalleryJSON(stdout, rows)
	}
	return nil
}

// writeGalleryJSON prints every edit's scores at every seed.
func writeGalleryJSON(w io.Writer, rows []galleryRow) error {
	type cell struct {
		Seed         uint64  `json:"seed"`
		Success      bool    `json:"success"`
		LayoutKept   bool    `json:"layout_kept"`
		BackgroundDB float64 `json:"background_psnr_db"`
		MaskIoU      float64 `json:"mask_iou"`
	}
	type row struct {
		Edit  string `json:"edit"`
		Seeds []cell `json:"seeds"`
	}
	var out []row
	for _, r := range rows {
		jr := row{Edit: r.title}
		for k, c := range r.cells {
			jr.Seeds = append(jr.Seeds, cell{Seed: gallerySeeds[k], Success: c.score.success, LayoutKept: c.score.keptAll(),
				BackgroundDB: c.score.bgPSNR, MaskIoU: c.score.iou})
		}
		out = append(out, jr)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// galleryBenchEdit is gallery edit i as the edit benchmark judges it.
func galleryBenchEdit(i int) benchEdit {
	ge := galleryEdits[i]
	be := benchEdit{kind: ge.kind, source: ge.source, target: ge.target, word: ge.word, factor: ge.factor, swapTo: ge.swapTo}
	switch ge.kind {
	case kindColour:
		be.success = func(r eval.Result, _ image.Image) bool { x, ok := largest(r); return ok && x.Colour == ge.swapTo }
		be.keep = []attribute{attrShape, attrPosition, attrSize}
	case kindShape:
		be.success = func(r eval.Result, _ image.Image) bool { x, ok := largest(r); return ok && x.Shape == ge.swapShape }
		be.keep = []attribute{attrColour, attrPosition, attrSize}
	case kindSuppress:
		c := scene.Red
		be.success = func(r eval.Result, _ image.Image) bool { x, ok := largest(r); return ok && x.Colour != c }
		be.keep = []attribute{attrShape, attrPosition, attrSize}
	}
	return be
}

type galleryCell struct {
	src, edited image.Image
	score       editScore
}

type galleryRow struct {
	title string
	cells []galleryCell
}

// summary is the row's scores over its seeds, as printed and drawn.
func (r galleryRow) summary() string {
	ok, kept, bg := 0, 0, 0
	for _, c := range r.cells {
		if c.score.success {
			ok++
		}
		if c.score.keptAll() {
			kept++
		}
		if !c.score.bgChanged() {
			bg++
		}
	}
	n := len(r.cells)
	return fmt.Sprintf("%s: edit right %d/%d, layout kept %d/%d, background kept %d/%d", r.title, ok, n, kept, n, bg, n)
}

// keptAll reports whether the edited image kept every attribute the edit
// must keep (false when either image shows no object).
func (s editScore) keptAll() bool {
	if len(s.kept) == 0 {
		return false
	}
	for _, k := range s.kept {
		if !k {
			return false
		}
	}
	return true
}

// note is the score line drawn under one seed's pair.
func (c galleryCell) note() string {
	mark := "ok"
	if !c.score.success {
		mark = "no"
	}
	return fmt.Sprintf("%s %2.0fdB", mark, c.score.bgPSNR)
}

func writeGallery(path string, rows []galleryRow) error {
	const side = 64 * galleryScale
	cols := len(gallerySeeds)
	width := 2*galleryMargin + cols*side + (cols-1)*galleryGap
	rowHeight := galleryTitle + 2*side + galleryNote + galleryGap
	legend := 3 * galleryTitle
	height := 2*galleryMargin + legend + len(rows)*rowHeight
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	text := func(x, y int, s string) {
		d := font.Drawer{Dst: img, Src: image.NewUniform(color.Black), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
		d.DrawString(s)
	}
	y := galleryMargin
	text(galleryMargin, y+13, "Each column is one seed (1-8, all shown): the source on top, the edit below it.")
	text(galleryMargin, y+13+galleryTitle, "Under each pair: whether the evaluator finds the asked edit (ok/no) and the PSNR outside the objects")
	text(galleryMargin, y+13+2*galleryTitle, "(32 dB and more: the background is unchanged). reword bench gallery draws this picture.")
	y += legend
	for _, r := range rows {
		text(galleryMargin, y+13, r.summary())
		top := y + galleryTitle
		for k, c := range r.cells {
			x := galleryMargin + k*(side+galleryGap)
			drawScaled(img, c.src, x, top)
			drawScaled(img, c.edited, x, top+side)
			text(x+2, top+2*side+13, c.note())
		}
		y += rowHeight
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// drawScaled draws src galleryScale times larger at (x, y), nearest
// neighbour, so the model's pixels stay visible.
func drawScaled(dst *image.RGBA, src image.Image, x, y int) {
	b := src.Bounds()
	for sy := 0; sy < b.Dy(); sy++ {
		for sx := 0; sx < b.Dx(); sx++ {
			c := src.At(b.Min.X+sx, b.Min.Y+sy)
			for dy := 0; dy < galleryScale; dy++ {
				for dx := 0; dx < galleryScale; dx++ {
					dst.Set(x+sx*galleryScale+dx, y+sy*galleryScale+dy, c)
				}
			}
		}
	}
}
