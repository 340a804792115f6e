package main

import (
	"math"
	"slices"

	"reword/backend/diffusion"
	"reword/models/tiny/eval"
	"reword/models/tiny/scene"
)

// bgChangedBelow is the background PSNR under which an edit counts as having
// changed the background. The VAE alone keeps drawn scenes at about 33 dB,
// so an edit below 32 dB outside the objects has changed more than the
// decoder's noise — except next to the objects, where the decoder follows
// their colour (edgeBand).
const bgChangedBelow = 32.0

// edgeBand is how far from the objects, in pixels, the second background
// reading starts. Through a VAE the pixels next to an object follow its
// colour: a swap drawn exactly and passed through the tiny model's VAE
// falls below bgChangedBelow outside the objects in 17 of the report run's
// 210 colour swaps (rings' holes, black-white swaps, textures next to the
// object; bench edit -drawn). Read beyond the band, the background says what
// the edit did to it rather than what the decoder does at every edge.
const edgeBand = 2

// editScore is the evaluation of one edited image against its source.
type editScore struct {
	success  bool
	iou      float64
	shift    float64 // centroid shift of the largest object, px; valid when hasShift
	hasShift bool
	bgPSNR   float64 // PSNR outside both foregrounds, dB
	// bgPSNRBeyondEdge is the PSNR beyond edgeBand pixels of both
	// foregrounds, dB.
	bgPSNRBeyondEdge float64
	// broken: the evaluator finds no object in the edited image.
	broken bool
	// srcBackground and background are the backgrounds the source and
	// the edited image show.
	srcBackground, background scene.Background
	// areaRatio is the edited image's object pixels over the source's
	// (every object the evaluator finds, as the mask IoU reads them),
	// valid when hasArea: both images show an object. An edit that redraws
	// its object smaller reads below 1, which its mask IoU does not tell
	// from an outline that moved.
	areaRatio float64
	hasArea   bool
	// kept records, for each attribute the edit must keep, whether the
	// edited image's largest object has it as the source's does; empty when
	// either image shows no object.
	kept map[attribute]bool
}

func (s editScore) bgChanged() bool { return s.bgPSNR < bgChangedBelow }

// bgChangedBeyondEdge is bgChanged read beyond edgeBand pixels of the
// objects.
func (s editScore) bgChangedBeyondEdge() bool { return s.bgPSNRBeyondEdge < bgChangedBelow }

// bgReplaced reports whether the evaluator sees another kind of background
// in the edited image than in its source (gray turned grass): a background
// drawn anew as a whole, which bgChanged does not tell from a texture or
// tone that moved. The two are counted apart, not nested: a faint change
// of kind can stay above bgChangedBelow.
func (s editScore) bgReplaced() bool { return s.background != s.srcBackground }

// score judges edited image res against source src for edit e.
func score(e benchEdit, src, res diffusion.Image) (editScore, error) {
	si, ri := src.NRGBA(), res.NRGBA()
	sa, err := eval.Analyze(si)
	if err != nil {
		return editScore{}, err
	}
	ra, err := eval.Analyze(ri)
	if err != nil {
		return editScore{}, err
	}
	s := editScore{success: e.success(ra, ri), iou: eval.IoU(sa.Foreground, ra.Foreground), broken: len(ra.Objects) == 0}
	if s.srcBackground, err = eval.Background(si); err != nil {
		return editScore{}, err
	}
	if s.background, err = eval.Background(ri); err != nil {
		return editScore{}, err
	}
	if len(sa.Objects) > 0 && len(ra.Objects) > 0 {
		a, b := sa.Objects[0], ra.Objects[0]
		s.shift, s.hasShift = math.Hypot(a.CenterX-b.CenterX, a.CenterY-b.CenterY), true
		s.areaRatio, s.hasArea = float64(objectPixels(ra))/float64(objectPixels(sa)), true
		s.kept = map[attribute]bool{}
		for _, at := range e.keep {
			s.kept[at] = sameAttribute(at, a, b)
		}
	}
	s.bgPSNR = backgroundPSNR(src, res, sa.Foreground, ra.Foreground, 0)
	s.bgPSNRBeyondEdge = backgroundPSNR(src, res, sa.Foreground, ra.Foreground, edgeBand)
	return s, nil
}

// backgroundPSNR compares src and res outside both foregrounds grown by
// band pixels. Where that leaves no pixel (an edit the evaluator reads as
// one object over the whole picture), it reads outside the source's
// foreground alone: the edit has drawn over the background the source
// showed, and that is a change of it, not a perfect score for want of
// pixels. A source with no background left to read is compared whole.
func backgroundPSNR(src, res diffusion.Image, srcFG, resFG []bool, band int) float64 {
	both := make([]bool, len(srcFG))
	for p := range both {
		both[p] = srcFG[p] || resFG[p]
	}
	for _, mask := range [][]bool{both, srcFG} {
		if band > 0 {
			mask = dilate(mask, src.Width, src.Height, band)
		}
		if slices.Contains(mask, false) {
			return psnrOutside(src, res, mask)
		}
	}
	return psnrOutside(src, res, make([]bool, len(srcFG)))
}

// objectPixels counts the pixels of every object a finds: its foreground,
// whose objects do not overlap.
func objectPixels(a eval.Result) int {
	n := 0
	for _, o := range a.Objects {
		n += o.Area
	}
	return n
}

func sameAttribute(at attribute, a, b eval.Object) bool {
	switch at {
	case attrShape:
		return a.Shape == b.Shape
	case attrColour:
		return a.Colour == b.Colour
	case attrPosition:
		return a.Position == b.Position
	case attrSize:
		return a.Size == b.Size
	}
	panic("reword: unknown attribute " + string(at))
}

// mustChangeBackground reports whether colour swap e cannot keep the
// background its source image shows: the world's rule forbids the target
// colour on it (white on white, black on black), so a faithful edit changes
// the background and its background numbers say nothing about keeping it.
func mustChangeBackground(e benchEdit, srcBackground scene.Background) bool {
	return e.kind == kindColour && !srcBackground.Allows(e.swapTo)
}

// psnrOutside compares a and b on the pixels mask leaves out.
func psnrOutside(a, b diffusion.Image, mask []bool) float64 {
	var sum float64
	n := 0
	for p, in := range mask {
		if in {
			continue
		}
		for c := 0; c < 3; c++ {
			d := float64(a.RGB[3*p+c]) - float64(b.RGB[3*p+c])
			sum += d * d
			n++
		}
	}
	return psnr(sum, n)
}

// dilate grows mask, w×h pixels, by r pixels in every direction
// (a (2r+1)² square around each pixel it holds).
func dilate(mask []bool, w, h, r int) []bool {
	out := make([]bool, len(mask))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			if !mask[y*w+x] {
				continue
			}
			for yy := max(y-r, 0); yy <= min(y+r, h-1); yy++ {
				for xx := max(x-r, 0); xx <= min(x+r, w-1); xx++ {
					out[yy*w+xx] = true
				}
			}
		}
	}
	return out
}

// psnr of a summed squared error over n 8-bit values; identical pixels are
// capped at 60 dB so that means stay finite. Callers never pass n = 0
// (backgroundPSNR always leaves pixels to read).
func psnr(sum float64, n int) float64 {
	if n == 0 || sum == 0 {
		return 60
	}
	return math.Min(60, 10*math.Log10(255*255/(sum/float64(n))))
}
