package scene

import (
	"image"
	"image/color"
	"math"
)

// Object is what a caption can say about one object.
type Object struct {
	Shape    Shape
	Colour   Colour
	Size     Size
	Position Position
}

// Placed is an object as drawn: its attributes and the jitter no caption
// names.
type Placed struct {
	Object
	// CenterX and CenterY are the circumcentre in pixels (x right, y down).
	CenterX, CenterY float64
	// Radius is the circumradius in pixels.
	Radius float64
	// Rotation is the clockwise turn from the upright outline, in radians.
	Rotation float64
}

// Scene is one drawable image: a background and the objects on it, drawn in
// order (later objects cover earlier ones; sampled scenes never overlap).
type Scene struct {
	Background Background
	// TexturePhase shifts the background texture (stripe offset, grass
	// noise seed); it has no effect on plain backgrounds.
	TexturePhase float64
	// StripeAngle is the stripes' angle in radians (Stripes only).
	StripeAngle float64
	Objects     []Placed
}

// supersampling is the number of samples per pixel along each axis: edges
// are anti-aliased by averaging supersampling² point samples.
const supersampling = 4

// Render draws the scene as a 64×64 RGBA image (alpha always 255).
func (s Scene) Render() *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, ImageSize, ImageSize))
	const n = supersampling * supersampling
	for y := 0; y < ImageSize; y++ {
		for x := 0; x < ImageSize; x++ {
			var r, g, b float64
			for sy := 0; sy < supersampling; sy++ {
				for sx := 0; sx < supersampling; sx++ {
					px := float64(x) + (float64(sx)+0.5)/supersampling
					py := float64(y) + (float64(sy)+0.5)/supersampling
					c := s.colourAt(px, py)
					r += float64(c.R)
					g += float64(c.G)
					b += float64(c.B)
				}
			}
			img.SetRGBA(x, y, color.RGBA{clampByte(r / n), clampByte(g / n), clampByte(b / n), 255})
		}
	}
	return img
}

// ObjectMasks returns, for each object, the pixels at least half covered by
// it and not covered by a later object; index y*ImageSize+x.
func (s Scene) ObjectMasks() [][]bool {
	masks := make([][]bool, len(s.Objects))
	for i := range masks {
		masks[i] = make([]bool, ImageSize*ImageSize)
	}
	const half = supersampling * supersampling / 2
	counts := make([]int, len(s.Objects))
	for y := 0; y < ImageSize; y++ {
		for x := 0; x < ImageSize; x++ {
			clear(counts)
			for sy := 0; sy < supersampling; sy++ {
				for sx := 0; sx < supersampling; sx++ {
					px := float64(x) + (float64(sx)+0.5)/supersampling
					py := float64(y) + (float64(sy)+0.5)/supersampling
					if top := s.topObjectAt(px, py); top >= 0 {
						counts[top]++
					}
				}
			}
			for i, c := range counts {
				if c >= half {
					masks[i][y*ImageSize+x] = true
				}
			}
		}
	}
	return masks
}

// ForegroundMask is the union of ObjectMasks.
func (s Scene) ForegroundMask() []bool {
	fg := make([]bool, ImageSize*ImageSize)
	for _, m := range s.ObjectMasks() {
		for i, v := range m {
			fg[i] = fg[i] || v
		}
	}
	return fg
}

// topObjectAt returns the index of the last object covering (x, y), or -1.
func (s Scene) topObjectAt(x, y float64) int {
	for i := len(s.Objects) - 1; i >= 0; i-- {
		if s.Objects[i].contains(x, y) {
			return i
		}
	}
	return -1
}

func (s Scene) colourAt(x, y float64) color.RGBA {
	if i := s.topObjectAt(x, y); i >= 0 {
		return s.Objects[i].Colour.RGB()
	}
	return s.backgroundAt(x, y)
}

// Stripe and grass geometry.
const (
	stripePeriod  = 7.0 // pixels per light+dark pair
	ringHoleRatio = 0.55
	starInner     = 0.45 // inner radius of the star's notches, relative to its circumradius
	grassBladeLen = 3    // grass noise is stretched vertically into blades this many pixels long
)

func (s Scene) backgroundAt(x, y float64) color.RGBA {
	switch s.Background {
	case Stripes:
		u := x*math.Cos(s.StripeAngle) + y*math.Sin(s.StripeAngle) + s.TexturePhase*stripePeriod
		if math.Mod(math.Floor(2*u/stripePeriod), 2) == 0 {
			return stripeLight
		}
		return stripeDark
	case Grass:
		// Value noise hashed per pixel column and per blade-long run of rows,
		// each column's runs offset differently so blades do not line up.
		col := int(math.Floor(x))
		seed := uint64(s.TexturePhase * (1 << 32))
		offset := int(hash3(uint64(col), 0x9e37, seed) % grassBladeLen)
		run := int(math.Floor(y)+float64(offset)) / grassBladeLen
		v := float64(hash3(uint64(col), uint64(run), seed)%1024) / 1023
		return scaleRGB(grassBase, grassDarkest+(grassLightest-grassDarkest)*v)
	default:
		return plainRGB[s.Background]
	}
}

// hash3 is a small integer hash (splitmix64 finaliser over a combination of
// its inputs) for deterministic texture noise.
func hash3(a, b, c uint64) uint64 {
	z := a*0x9e3779b97f4a7c15 ^ (b+0x632be59bd9b4e019)*0xbf58476d1ce4e5b9 ^ (c+1)*0x94d049bb133111eb
	z ^= z >> 30
	z *= 0xbf58476d1ce4e5b9
	z ^= z >> 27
	z *= 0x94d049bb133111eb
	z ^= z >> 31
	return z
}

// contains reports whether point (x, y) lies inside the object's outline.
func (p Placed) contains(x, y float64) bool {
	dx, dy := x-p.CenterX, y-p.CenterY
	d2 := dx*dx + dy*dy
	r := p.Radius
	if d2 > r*r {
		return false
	}
	// Rotate the point back into the upright frame (y up) of the outline.
	sin, cos := math.Sincos(p.Rotation)
	u := cos*dx + sin*dy
	v := -(-sin*dx + cos*dy)
	switch p.Shape {
	case Circle:
		return true
	case Ring:
		return d2 >= ringHoleRatio*ringHoleRatio*r*r
	case Square:
		h := r / math.Sqrt2
		return math.Abs(u) <= h && math.Abs(v) <= h
	case Triangle:
		return insidePolygon(u/r, v/r, unitTriangle)
	case Star:
		return insidePolygon(u/r, v/r, unitStar)
	}
	return false
}

// Outlines of circumradius 1, scaled to each object's radius at test time.
var (
	unitTriangle = regularPolygon(3, 1, 1)
	unitStar     = regularPolygon(5, 1, starInner)
)

// regularPolygon returns the vertices of an upright polygon with n outer
// points at radius outer; when inner differs from outer, notches at radius
// inner sit between them (a star).
func regularPolygon(n int, outer, inner float64) [][2]float64 {
	var pts [][2]float64
	for k := 0; k < n; k++ {
		a := math.Pi/2 + 2*math.Pi*float64(k)/float64(n)
		pts = append(pts, [2]float64{outer * math.Cos(a), outer * math.Sin(a)})
		if inner != outer {
			b := a + math.Pi/float64(n)
			pts = append(pts, [2]float64{inner * math.Cos(b), inner * math.Sin(b)})
		}
	}
	return pts
}

// insidePolygon is the even-odd crossing test.
func insidePolygon(x, y float64, pts [][2]float64) bool {
	in := false
	for i, j := 0, len(pts)-1; i < len(pts); j, i = i, i+1 {
		xi, yi, xj, yj := pts[i][0], pts[i][1], pts[j][0], pts[j][1]
		if (yi > y) != (yj > y) && x < (xj-xi)*(y-yi)/(yj-yi)+xi {
			in = !in
		}
	}
	return in
}

func sqrt(v float64) float64 { return math.Sqrt(v) }
