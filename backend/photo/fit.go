package photo

import (
	"fmt"
	"image"
	"image/color"
	"strings"

	xdraw "golang.org/x/image/draw"
)

// Fit is how a photo of another aspect ratio is made the model's size.
type Fit int

const (
	// Crop keeps the centre of the photo at the model's aspect ratio and
	// drops the rest, as the published notebooks load photos.
	Crop Fit = iota
	// Letterbox keeps the whole photo and pads the rest with white.
	Letterbox
)

// Fits lists the fit names ParseFit accepts, the default first.
var Fits = []string{"crop", "letterbox"}

func (f Fit) String() string {
	if f >= 0 && int(f) < len(Fits) {
		return Fits[f]
	}
	return fmt.Sprintf("Fit(%d)", int(f))
}

// ParseFit reads a fit name ("crop" or "letterbox").
func ParseFit(s string) (Fit, error) {
	for i, name := range Fits {
		if s == name {
			return Fit(i), nil
		}
	}
	return 0, fmt.Errorf("fit %q is not one of %s", s, strings.Join(Fits, ", "))
}

// Prepare decodes data within lim and returns it upright, opaque and fitted
// to width × height: the image a model encodes.
func Prepare(data []byte, width, height int, fit Fit, lim Limits) (*image.RGBA, Info, error) {
	if width <= 0 || height <= 0 {
		return nil, Info{}, fmt.Errorf("photo target size %d×%d must be positive", width, height)
	}
	if fit != Crop && fit != Letterbox {
		return nil, Info{}, fmt.Errorf("unknown photo fit %v", fit)
	}
	img, info, err := Decode(data, lim)
	if err != nil {
		return nil, info, err
	}
	return FitImage(img, info.Orientation, width, height, fit), info, nil
}

// FitImage turns the stored image img upright by o and fits it to
// width × height. The crop or letterbox is computed in stored coordinates
// and the orientation applied to the small result, so a large photo is
// never copied at full size just to be turned.
func FitImage(img image.Image, o Orientation, width, height int, fit Fit) *image.RGBA {
	// The target as the stored (unturned) image sees it.
	tw, th := width, height
	if o.SwapsAxes() {
		tw, th = th, tw
	}
	src := img.Bounds()
	sw, sh := src.Dx(), src.Dy()
	dst := image.NewRGBA(image.Rect(0, 0, tw, th))
	// White under everything: transparent pixels and letterbox bars.
	xdraw.Draw(dst, dst.Bounds(), image.NewUniform(color.White), image.Point{}, xdraw.Src)
	srcRect, dstRect := src, dst.Bounds()
	switch fit {
	case Crop:
		// The largest centred window of the target's aspect ratio:
		// compare sw/sh with tw/th in integers.
		if sw*th > sh*tw {
			cw := max(1, sh*tw/th)
			x0 := src.Min.X + (sw-cw)/2
			srcRect = image.Rect(x0, src.Min.Y, x0+cw, src.Max.Y)
		} else {
			ch := max(1, sw*th/tw)
			y0 := src.Min.Y + (sh-ch)/2
			srcRect = image.Rect(src.Min.X, y0, src.Max.X, y0+ch)
		}
	case Letterbox:
		if sw*th > sh*tw {
			h := max(1, sh*tw/sw)
			y0 := (th - h) / 2
			dstRect = image.Rect(0, y0, tw, y0+h)
		} else {
			w := max(1, sw*th/sh)
			x0 := (tw - w) / 2
			dstRect = image.Rect(x0, 0, x0+w, th)
		}
	}
	if srcRect.Dx() == dstRect.Dx() && srcRect.Dy() == dstRect.Dy() {
		// Same size: copy, so that an image already at the model's size
		// reaches it unresampled.
		xdraw.Draw(dst, dstRect, img, srcRect.Min, xdraw.Over)
	} else {
		// Catmull-Rom widens its kernel when shrinking, so a large photo
		// is filtered, not point-sampled.
		xdraw.CatmullRom.Scale(dst, dstRect, img, srcRect, xdraw.Over, nil)
	}
	return orient(dst, o)
}

// orient returns img turned upright for orientation o (a new image unless o
// is Upright). Output pixel (x, y) reads the stored pixel given by the EXIF
// definition of each orientation.
func orient(img *image.RGBA, o Orientation) *image.RGBA {
	if o == Upright || o < Upright || o > Rotate270CW {
		return img
	}
	w, h := img.Rect.Dx(), img.Rect.Dy()
	ow, oh := w, h
	if o.SwapsAxes() {
		ow, oh = h, w
	}
	out := image.NewRGBA(image.Rect(0, 0, ow, oh))
	for y := 0; y < oh; y++ {
		for x := 0; x < ow; x++ {
			var sx, sy int
			switch o {
			case MirrorHorizontal:
				sx, sy = w-1-x, y
			case Rotate180:
				sx, sy = w-1-x, h-1-y
			case MirrorVertical:
				sx, sy = x, h-1-y
			case Transpose:
				sx, sy = y, x
			case Rotate90CW:
				sx, sy = y, h-1-x
			case Transverse:
				sx, sy = w-1-y, h-1-x
			case Rotate270CW:
				sx, sy = w-1-y, x
			}
			copy(out.Pix[out.PixOffset(x, y):][:4], img.Pix[img.PixOffset(sx+img.Rect.Min.X, sy+img.Rect.Min.Y):][:4])
		}
	}
	return out
}
