package eval

import "math"

// The 3rd harmonic of an exact triangle's radial profile, the 4th of an
// exact square's and the 5th of the drawer's star's, relative to the
// profile's mean (a polygon's outline is r(θ) = inradius / cos(θ − the
// nearest edge's normal); the star's was integrated numerically): the units
// of Object.Threefold, Fourfold and Fivefold.
const (
	triangleHarmonic = 0.13757
	squareHarmonic   = 0.06970
	starHarmonic     = 0.15886
)

// radialRays is how many directions the outline's radial profile samples:
// 2° apart, so that a small object's outline (circumradius 8 px, about 50 px
// round) is read at every boundary pixel.
const radialRays = 180

// radialSymmetry measures how strongly an outline repeats three, four and
// five times per turn. It walks rays out from the centre (cx, cy) in 0.25 px
// steps to where they first leave filled, giving the outline's distance
// r(θ) in every direction, and returns the amplitudes of r's 3rd, 4th and
// 5th Fourier harmonics relative to its mean, each in units of an exact
// triangle's, square's and star's (so a drawn triangle reads about 1, 0, 0).
// A triangle's profile peaks at its three corners, a square's at its four,
// a star's at its five points; a circle's is flat. Unlike the area over the
// circumscribed circle, the amplitudes are barely moved by a spur at one
// corner or by sides bent inwards, which change one ray or the profile's
// depth, not how often it repeats.
func radialSymmetry(filled []bool, cx, cy float64) (three, four, five float64) {
	var mean float64
	var c, s [3]float64 // cosine and sine sums of harmonics 3, 4, 5
	for k := 0; k < radialRays; k++ {
		theta := 2 * math.Pi * float64(k) / radialRays
		dx, dy := math.Cos(theta), math.Sin(theta)
		r := 0.0
		for t := 0.0; ; t += 0.25 {
			x, y := cx+t*dx, cy+t*dy
			if x < 0 || y < 0 || x >= n || y >= n || !filled[int(y)*n+int(x)] {
				break
			}
			r = t
		}
		mean += r
		for i := range c {
			m := float64(i + 3)
			c[i] += r * math.Cos(m*theta)
			s[i] += r * math.Sin(m*theta)
		}
	}
	if mean == 0 {
		return 0, 0, 0
	}
	// |c_m| / c_0 with c_m = (1/K) Σ r e^{−imθ}: the 1/K cancels.
	amp := func(i int, unit float64) float64 { return math.Hypot(c[i], s[i]) / mean / unit }
	return amp(0, triangleHarmonic), amp(1, squareHarmonic), amp(2, starHarmonic)
}
