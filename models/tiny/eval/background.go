package eval

import (
	"fmt"
	"image"
	"math"
	"sort"
	"sync"

	"reword/models/tiny/scene"
)

// Background names the background an image shows, one of scene.Backgrounds.
//
// It reads the same 2-pixel border Analyze takes as background (objects never
// reach it in drawn scenes) and describes it by its colour and whether it is
// textured. The colour is, per channel, the midpoint of the border's 10th and
// 90th percentiles: a striped border is part light and part dark tone in
// proportions that depend on the stripes' angle, so its median or mean would
// wander between the tones (and the dark one lies nearer plain gray than the
// light one), while the midpoint stays between them. The texture is half the
// distance between those percentiles, capped: generated images draw stripes
// and grass far fainter than the drawer does, and pixel noise gives a plain
// background some spread too, so only "plain" against "clearly textured"
// carries information, and the colour decides the rest (stripes are tinted
// blue, gray is neutral). The image is classified as the nearest of the
// references, which are measured on backgrounds the scene drawer renders, so
// they follow the drawer's palette whenever it changes.
func Background(img image.Image) (scene.Background, error) {
	b := img.Bounds()
	if b.Dx() != n || b.Dy() != n {
		return 0, fmt.Errorf("eval: image is %dx%d, want %dx%d", b.Dx(), b.Dy(), n, n)
	}
	f := borderFeatures(img)
	best, out := math.Inf(1), scene.Background(0)
	for i, r := range backgroundRefs() {
		if d := f.distance(r); d < best {
			best, out = d, scene.Backgrounds[i]
		}
	}
	return out, nil
}

// Texture, in RGB units: the texture is capped at textureCap (faint
// generated stripes reach it, generated gray stays near 1) and weighs
// textureWeight times an RGB unit of colour.
const (
	textureCap    = 4.0
	textureWeight = 3.0
)

// borderPercentile is where the colour and texture read the border's
// distribution, from each end: a few object or artefact pixels on the
// border do not move it.
const borderPercentile = 0.1

// bgFeatures describe an image border: its colour and (capped) texture.
type bgFeatures struct {
	colour  [3]float64
	texture float64
}

func (f bgFeatures) distance(g bgFeatures) float64 {
	d := sq(textureWeight * (f.texture - g.texture))
	for c := range f.colour {
		d += sq(f.colour[c] - g.colour[c])
	}
	return d
}

func sq(v float64) float64 { return v * v }

func borderFeatures(img image.Image) bgFeatures {
	b := img.Bounds()
	var ch [3][]float64
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			if x >= borderWidth && y >= borderWidth && x < n-borderWidth && y < n-borderWidth {
				continue
			}
			r, g, bl, _ := img.At(b.Min.X+x, b.Min.Y+y).RGBA()
			ch[0], ch[1], ch[2] = append(ch[0], float64(r>>8)), append(ch[1], float64(g>>8)), append(ch[2], float64(bl>>8))
		}
	}
	var f bgFeatures
	for c := range ch {
		v := ch[c]
		sort.Float64s(v)
		k := int(borderPercentile * float64(len(v)))
		lo, hi := v[k], v[len(v)-1-k]
		f.colour[c] = (lo + hi) / 2
		f.texture += (hi - lo) / 2 / 3
	}
	f.texture = math.Min(f.texture, textureCap)
	return f
}

// backgroundRefs are the features of each of scene.Backgrounds (same order),
// averaged over renders with several stripe angles and texture phases.
var backgroundRefs = sync.OnceValue(func() []bgFeatures {
	const renders = 12
	refs := make([]bgFeatures, len(scene.Backgrounds))
	for i, bg := range scene.Backgrounds {
		for k := 0; k < renders; k++ {
			s := scene.Scene{Background: bg, TexturePhase: float64(k) / renders, StripeAngle: math.Pi * float64(k) / renders}
			f := borderFeatures(s.Render())
			for c := range f.colour {
				refs[i].colour[c] += f.colour[c] / renders
			}
			refs[i].texture += f.texture / renders
		}
	}
	return refs
})
