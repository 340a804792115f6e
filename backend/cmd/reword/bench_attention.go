package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"text/tabwriter"

	"reword/backend/diffusion"
	"reword/backend/scheduler"
	"reword/models/tiny/eval"
	"reword/models/tiny/scene"
	"reword/shared/clip"
)

func init() {
	registerBench(benchmark{
		name:    "attention",
		summary: "how well each cross-attention resolution localises the caption's words (tiny model)",
		run:     benchAttention,
	})
}

// Word kinds the benchmark measures. An object's colour, shape, size and
// position words should attend to that object; the background's name
// ("grass") and the rest of its phrase ("on a … background") to what no
// object covers.
const (
	attnColour     = "colour"
	attnShape      = "shape"
	attnSize       = "size"
	attnPosition   = "position"
	attnBackground = "background"
	attnPhrase     = "bg phrase"
)

var attentionKinds = []string{attnColour, attnShape, attnSize, attnPosition, attnBackground, attnPhrase}

// The tokens no measured word covers, for splitting a background pixel's
// attention over the whole prompt: the caption's other words (articles,
// "and", the position phrase's "on the", "at the", "in the"), BOS, EOS,
// and the padding after EOS, which the heat maps leave out and which takes
// what the prompt's own tokens do not.
const (
	attnOtherWords = "other words"
	attnStart      = "BOS"
	attnEnd        = "EOS"
	attnPadding    = "padding"
)

// pixelKinds are the groups a background pixel's attention is split into;
// they cover every key position once, so one image's shares add up to 1.
var pixelKinds = append(slices.Clone(attentionKinds), attnOtherWords, attnStart, attnEnd, attnPadding)

// wordShare is one word of one image at one attention resolution: the share
// of the word's cross-attention mass inside its region, and the region's
// area fraction, which is the share a uniform map would give. AtBackground
// is the word's mean share of a background pixel's attention: under
// Prompt-to-Prompt's injected maps, how much of what a background pixel
// reads changes when the word is swapped.
type wordShare struct {
	Kind          string
	Word          string
	Stride        int
	Width, Height int
	Share, Area   float64
	AtBackground  float64
}

// pixelSplit is one image at one attention resolution: the mean share of
// a background pixel's attention that each group of pixelKinds takes (a
// kind the caption lacks takes 0). Under Prompt-to-Prompt's injected maps
// a background pixel keeps these weights, so the groups whose text states
// a swap changes are what can reach it through cross-attention.
type pixelSplit struct {
	Stride        int
	Width, Height int
	Shares        map[string]float64
}

// errTooFewObjects: the evaluator found fewer objects than the caption
// names, so some words have no region to measure against.
var errTooFewObjects = errors.New("fewer objects found than the caption names")

// benchAttention generates scenes of the tiny model's world and measures,
// per cross-attention resolution, where each caption word's attention
// (averaged over the steps, as heat maps are) falls: inside the object the
// word describes, or, for the background phrase, outside every object.
func benchAttention(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench attention", "", stderr)
	dir := fs.String("model", defaultPath("models/tiny"), "model folder (holding model.json)")
	nPrompts := fs.Int("prompts", 20, "single-object prompts (scene.EvalPrompts, or SeenPrompts with -seen)")
	nPairs := fs.Int("pairs", 6, "two-object prompts (seen triples at two outer positions)")
	nSeeds := fs.Int("seeds", 1, "seeds per prompt")
	steps := fs.Int("steps", 50, "DDIM steps")
	guidance := fs.Float64("guidance", 7.5, "classifier-free guidance scale")
	threads := fs.Int("threads", 0, "ONNX Runtime threads (0: one per core)")
	seen := fs.Bool("seen", false, "single-object prompts from triples training draws instead of held-out ones")
	background := fs.Bool("background", true, "name the background in every prompt (otherwise about half do)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *nPrompts < 0 || *nPairs < 0 || *nPrompts+*nPairs == 0 || *nSeeds < 1 || *steps < 1 {
		return usageError("want no arguments, -prompts and -pairs ≥ 0 and not both 0, positive -seeds and -steps")
	}
	e, err := diffusion.Load(*dir, diffusion.Options{Threads: *threads, Instrument: true})
	if err != nil {
		return err
	}
	defer e.Close()
	if err := needSceneImages(e); err != nil {
		return err
	}

	prompts := attentionPrompts(*nPrompts, *nPairs, *seen, *background)
	rep := attentionReport{Model: *dir, Prompts: *nPrompts, Pairs: *nPairs, Seeds: *nSeeds, Steps: *steps, Guidance: *guidance}
	rep.HeatMapGrid[0], rep.HeatMapGrid[1] = e.HeatMapSize()
	rep.LocalBlendGrid[0], rep.LocalBlendGrid[1] = e.LocalBlendSize()
	var all []wordShare
	var allSplits []pixelSplit
	total := len(prompts) * *nSeeds
	for seed := 0; seed < *nSeeds; seed++ {
		for _, c := range prompts {
			req := diffusion.GenerateRequest{Prompt: c.Text, Seed: uint64(seed), Steps: *steps, Guidance: guidance, Scheduler: scheduler.DDIMName}
			res, err := e.Generate(ctx, req, diffusion.RunOptions{AllResolutions: true, NoSourceCache: true}, nil)
			if err != nil {
				return err
			}
			found, err := eval.Analyze(res.Images[0].NRGBA())
			if err != nil {
				return err
			}
			rep.Images++
			shares, splits, err := measureAttention(c, e.Tokenizer().Encode(c.Text), res.HeatMaps, found)
			if errors.Is(err, errTooFewObjects) {
				rep.Skipped++
				continue
			}
			if err != nil {
				return fmt.Errorf("%q (seed %d): %w", c.Text, seed, err)
			}
			all = append(all, shares...)
			allSplits = append(allSplits, splits...)
			fmt.Fprintf(stderr, "\r%d/%d images", rep.Images, total)
		}
	}
	fmt.Fprintln(stderr)
	rep.Rows = summarizeShares(all)
	rep.BackgroundPixel = summarizeSplits(allSplits)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return rep.writeTable(stdout)
}

// attentionPrompts builds the prompt set: single-object prompts of held-out
// (or seen) triples, then two-object prompts like the training set's (two
// outer positions, triples training draws), colour and position named.
func attentionPrompts(singles, pairs int, seen, background bool) []scene.Caption {
	var out []scene.Caption
	set := scene.EvalPrompts(singles, 1)
	if seen {
		set = scene.SeenPrompts(singles, 1)
	}
	for _, c := range set {
		if background {
			c = scene.NewCaption(c.Mentions, c.Background, true)
		}
		out = append(out, c)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	outer := []scene.Position{scene.Left, scene.Right, scene.Top, scene.Bottom}
	for len(out) < singles+pairs {
		bg := scene.Backgrounds[rng.IntN(len(scene.Backgrounds))]
		first := outer[rng.IntN(len(outer))]
		var ms []scene.Mention
		for len(ms) < 2 {
			o := scene.Object{
				Shape: scene.Shapes[rng.IntN(len(scene.Shapes))], Colour: scene.Colours[rng.IntN(len(scene.Colours))],
				Size: scene.Small, Position: first,
			}
			if len(ms) == 1 {
				o.Position = outer[rng.IntN(len(outer))]
				if o.Position == first || o.Shape == ms[0].Shape || o.Colour == ms[0].Colour {
					continue
				}
			}
			if scene.HeldOut(o) || !bg.Allows(o.Colour) {
				continue
			}
			ms = append(ms, scene.Mention{Object: o, NamesColour: true, NamesPosition: true})
		}
		out = append(out, scene.NewCaption(ms, bg, background || rng.IntN(2) == 0))
	}
	return out
}

// measureAttention measures one generated image: maps are its heat maps
// (row 0 at every resolution), enc the caption's CLIP encoding, found what
// the evaluator saw in the image. Each named object is matched to a found
// object; a word's attention is the sum of its tokens' maps. It also splits
// a background pixel's attention over pixelKinds, once per resolution.
func measureAttention(c scene.Caption, enc clip.Encoding, maps []diffusion.HeatMap, found eval.Result) ([]wordShare, []pixelSplit, error) {
	if len(c.Words) == 0 {
		return nil, nil, fmt.Errorf("caption %q has no words", c.Text)
	}
	match, ok := matchObjects(c.Mentions, found.Objects)
	if !ok {
		return nil, nil, errTooFewObjects
	}
	tokens, err := wordTokens(c, enc)
	if err != nil {
		return nil, nil, err
	}
	if n := len(enc.IDs); n < 2 || enc.IDs[0] != clip.BOS || enc.IDs[n-1] != clip.EOS {
		return nil, nil, fmt.Errorf("encoding of %q does not run from BOS to EOS: %v", c.Text, enc.IDs)
	}
	background := make([]bool, len(found.Foreground))
	backgroundPixels := 0
	for p, fg := range found.Foreground {
		background[p] = !fg
		if !fg {
			backgroundPixels++
		}
	}
	var out []wordShare
	var splits []pixelSplit
	for _, hm := range maps {
		if hm.Row != 0 {
			continue
		}
		if len(hm.Tokens) != len(enc.Tokens) || len(hm.Maps) != len(hm.Tokens) {
			return nil, nil, fmt.Errorf("heat map of %q has %d tokens and %d maps; the caption encodes to %d tokens", hm.Prompt, len(hm.Tokens), len(hm.Maps), len(enc.Tokens))
		}
		split := pixelSplit{Stride: hm.Stride, Width: hm.Width, Height: hm.Height, Shares: make(map[string]float64, len(pixelKinds))}
		measured := make([]bool, len(hm.Tokens))
		for w, word := range c.Words {
			kind, mask := "", []bool(nil)
			switch {
			case word.Region == scene.BackgroundRegion && word.Text == c.Background.String():
				kind, mask = attnBackground, background
			case word.Region == scene.BackgroundRegion:
				kind, mask = attnPhrase, background
			case word.Region >= scene.ObjectRegion(0) && int(word.Region-scene.ObjectRegion(0)) < len(c.Mentions):
				i := int(word.Region - scene.ObjectRegion(0))
				kind, mask = objectWordKind(c.Mentions[i], word.Text), found.Objects[match[i]].Mask
			}
			if kind == "" || len(tokens[w]) == 0 {
				continue
			}
			share, area, err := massShare(hm, tokens[w], mask)
			if err != nil {
				return nil, nil, err
			}
			atBackground, err := meanOver(hm, tokens[w], background)
			if err != nil {
				return nil, nil, err
			}
			out = append(out, wordShare{Kind: kind, Word: word.Text, Stride: hm.Stride, Width: hm.Width, Height: hm.Height,
				Share: share, Area: area, AtBackground: atBackground})
			split.Shares[kind] += atBackground
			for _, k := range tokens[w] {
				measured[k] = true
			}
		}
		if backgroundPixels == 0 {
			continue // no background pixel to split
		}
		if err := splitUnmeasured(hm, measured, background, &split); err != nil {
			return nil, nil, err
		}
		splits = append(splits, split)
	}
	return out, splits, nil
}

// splitUnmeasured sets in split the share of a background pixel's
// attention in hm that the tokens no measured word covers take: the
// caption's other content tokens, BOS (the first token), EOS (the last)
// and the padding, which takes the rest of each softmax row.
func splitUnmeasured(hm diffusion.HeatMap, measured []bool, background []bool, split *pixelSplit) error {
	var other []int
	for k := 1; k < len(hm.Tokens)-1; k++ {
		if !measured[k] {
			other = append(other, k)
		}
	}
	all := make([]int, len(hm.Tokens))
	for k := range all {
		all[k] = k
	}
	for _, g := range []struct {
		kind   string
		tokens []int
	}{{attnOtherWords, other}, {attnStart, []int{0}}, {attnEnd, []int{len(hm.Tokens) - 1}}} {
		v, err := meanOver(hm, g.tokens, background)
		if err != nil {
			return err
		}
		split.Shares[g.kind] = v
	}
	// The padding's keys are not in the heat maps: they take what the
	// prompt's own tokens leave of each row's softmax. The maps are float32
	// means, so the prompt's sum may pass 1 by rounding, not by more.
	prompt, err := meanOver(hm, all, background)
	if err != nil {
		return err
	}
	if prompt > 1+1e-4 {
		return fmt.Errorf("the prompt's tokens take %v of a background pixel's attention at %dx%d; a softmax row adds up to 1", prompt, hm.Width, hm.Height)
	}
	split.Shares[attnPadding] = max(0, 1-prompt)
	return nil
}

// objectWordKind says which attribute of m an object word names, or ""
// for the article and the position phrase's function words.
func objectWordKind(m scene.Mention, word string) string {
	switch {
	case m.NamesColour && word == m.Colour.String():
		return attnColour
	case word == m.Shape.String():
		return attnShape
	case m.NamesSize && word == m.Size.String():
		return attnSize
	case m.NamesPosition && word == m.Position.String():
		return attnPosition
	}
	return ""
}

// wordTokens maps each caption word to the indices of the CLIP tokens whose
// byte spans lie inside it (Text is the words joined by single spaces).
func wordTokens(c scene.Caption, enc clip.Encoding) ([][]int, error) {
	if len(enc.Spans) != len(enc.Tokens) {
		return nil, fmt.Errorf("encoding of %q has %d spans for %d tokens", c.Text, len(enc.Spans), len(enc.Tokens))
	}
	out := make([][]int, len(c.Words))
	start := 0
	for w, word := range c.Words {
		end := start + len(word.Text)
		if end > len(c.Text) || c.Text[start:end] != word.Text {
			return nil, fmt.Errorf("caption %q: word %d %q is not at byte %d", c.Text, w, word.Text, start)
		}
		for k, s := range enc.Spans {
			if s.End > s.Start && s.Start >= start && s.End <= end {
				out[w] = append(out[w], k)
			}
		}
		start = end + 1
	}
	return out, nil
}

// massShare returns the share of the summed maps of tokens that falls on
// mask (scene.ImageSize² pixels), each cell's mass spread evenly over the
// pixels it covers, and the mask's area fraction: the share of a uniform
// map. A word with no attention at all has no share to report.
func massShare(hm diffusion.HeatMap, tokens []int, mask []bool) (share, area float64, err error) {
	inside, pixels, err := maskCells(hm, tokens, mask)
	if err != nil {
		return 0, 0, err
	}
	cell := float64(len(mask)) / float64(len(inside))
	var mass, in float64
	for _, k := range tokens {
		for q, v := range hm.Maps[k] {
			mass += float64(v)
			in += float64(v) * float64(inside[q]) / cell
		}
	}
	if !(mass > 0) {
		return 0, 0, fmt.Errorf("tokens %v carry no attention at %dx%d", tokens, hm.Width, hm.Height)
	}
	return in / mass, float64(pixels) / float64(len(mask)), nil
}

// meanOver returns the mean over mask's pixels of the summed maps of
// tokens: the tokens' share of such a pixel's attention (each cell's value
// is a softmax share, so it applies to every pixel the cell covers); 0
// for an empty mask.
func meanOver(hm diffusion.HeatMap, tokens []int, mask []bool) (float64, error) {
	inside, pixels, err := maskCells(hm, tokens, mask)
	if err != nil || pixels == 0 {
		return 0, err
	}
	var sum float64
	for _, k := range tokens {
		for q, v := range hm.Maps[k] {
			sum += float64(v) * float64(inside[q])
		}
	}
	return sum / float64(pixels), nil
}

// maskCells checks that hm's grid tiles a mask of scene.ImageSize² pixels
// and holds a map for each of tokens, and counts the mask's pixels in each
// cell of the grid and in all.
func maskCells(hm diffusion.HeatMap, tokens []int, mask []bool) (inside []int, pixels int, err error) {
	const n = scene.ImageSize
	if len(mask) != n*n {
		return nil, 0, fmt.Errorf("mask has %d pixels, want %d", len(mask), n*n)
	}
	if hm.Width <= 0 || hm.Height <= 0 || n%hm.Width != 0 || n%hm.Height != 0 {
		return nil, 0, fmt.Errorf("a %dx%d attention grid does not tile a %dx%d image", hm.Width, hm.Height, n, n)
	}
	for _, k := range tokens {
		if k < 0 || k >= len(hm.Maps) || len(hm.Maps[k]) != hm.Width*hm.Height {
			return nil, 0, fmt.Errorf("token %d has no %dx%d map", k, hm.Width, hm.Height)
		}
	}
	cw, ch := n/hm.Width, n/hm.Height
	inside = make([]int, hm.Width*hm.Height)
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			if mask[y*n+x] {
				inside[(y/ch)*hm.Width+x/cw]++
				pixels++
			}
		}
	}
	return inside, pixels, nil
}

// matchObjects assigns each mention a distinct found object: the one
// assignment that names the fewest wrong shapes and colours, then lies
// nearest the named positions. A single mention takes the largest object,
// as the evaluator judges single-object prompts.
func matchObjects(ms []scene.Mention, objs []eval.Object) ([]int, bool) {
	if len(objs) < len(ms) || len(ms) == 0 {
		return nil, false
	}
	if len(ms) == 1 {
		return []int{0}, true
	}
	cost := func(m scene.Mention, o eval.Object) float64 {
		c := 0.0
		if o.Shape != m.Shape {
			c += 10
		}
		if m.NamesColour && o.Colour != m.Colour {
			c += 10
		}
		if m.NamesPosition {
			x, y := m.Position.Anchor()
			c += math.Hypot(o.CenterX-x, o.CenterY-y) / scene.ImageSize
		}
		return c
	}
	best, bestCost := []int(nil), math.Inf(1)
	cur := make([]int, 0, len(ms))
	used := make([]bool, len(objs))
	var search func(c float64)
	search = func(c float64) {
		if len(cur) == len(ms) {
			if c < bestCost {
				best, bestCost = append([]int(nil), cur...), c
			}
			return
		}
		m := ms[len(cur)]
		for i, o := range objs {
			if !used[i] {
				used[i] = true
				cur = append(cur, i)
				search(c + cost(m, o))
				cur = cur[:len(cur)-1]
				used[i] = false
			}
		}
	}
	search(0)
	return best, best != nil
}

// attentionRow summarizes one word kind at one resolution.
type attentionRow struct {
	Resolution string `json:"resolution"`
	Stride     int    `json:"stride"`
	Width      int    `json:"width"`
	Height     int    `json:"height"`
	Kind       string `json:"word"`
	// N counts the word instances measured.
	N int `json:"n"`
	// Share is the mean share of a word's attention mass in its region,
	// Area the mean area fraction of that region (a uniform map's share).
	Share float64 `json:"share"`
	Area  float64 `json:"area"`
	// Above is the fraction of instances whose share beats their area.
	Above float64 `json:"above_uniform"`
	// AtBackground is the mean of wordShare.AtBackground.
	AtBackground float64 `json:"at_background_pixel"`
}

type attentionReport struct {
	Model          string         `json:"model"`
	Prompts        int            `json:"prompts"`
	Pairs          int            `json:"pairs"`
	Seeds          int            `json:"seeds"`
	Steps          int            `json:"steps"`
	Guidance       float64        `json:"guidance"`
	Images         int            `json:"images"`
	Skipped        int            `json:"skipped"`
	HeatMapGrid    [2]int         `json:"heat_map_grid"`
	LocalBlendGrid [2]int         `json:"local_blend_grid"`
	Rows           []attentionRow `json:"rows"`
	// BackgroundPixel splits a background pixel's attention over every key
	// position, per resolution (finest first).
	BackgroundPixel []pixelRow `json:"background_pixel"`
}

// pixelRow is the mean over images of pixelSplit at one resolution.
type pixelRow struct {
	Resolution string `json:"resolution"`
	Stride     int    `json:"stride"`
	// Images counts the images averaged.
	Images int `json:"images"`
	// Shares maps each group of pixelKinds to its mean share; they add up
	// to 1.
	Shares map[string]float64 `json:"shares"`
}

// summarizeSplits averages the splits per resolution, finest first.
func summarizeSplits(all []pixelSplit) []pixelRow {
	var rows []pixelRow
	at := map[int]int{}
	for _, sp := range all {
		i, ok := at[sp.Stride]
		if !ok {
			i = len(rows)
			at[sp.Stride] = i
			rows = append(rows, pixelRow{Resolution: fmt.Sprintf("%dx%d", sp.Width, sp.Height), Stride: sp.Stride,
				Shares: make(map[string]float64, len(pixelKinds))})
		}
		rows[i].Images++
		for _, k := range pixelKinds {
			rows[i].Shares[k] += sp.Shares[k]
		}
	}
	for i := range rows {
		for k := range rows[i].Shares {
			rows[i].Shares[k] /= float64(rows[i].Images)
		}
	}
	slices.SortFunc(rows, func(a, b pixelRow) int { return a.Stride - b.Stride })
	return rows
}

// summarizeShares averages the measurements per resolution (finest first)
// and word kind.
func summarizeShares(all []wordShare) []attentionRow {
	var strides []int
	seen := map[int]bool{}
	for _, s := range all {
		if !seen[s.Stride] {
			seen[s.Stride] = true
			strides = append(strides, s.Stride)
		}
	}
	var rows []attentionRow
	slices.Sort(strides)
	for _, stride := range strides {
		for _, kind := range attentionKinds {
			r := attentionRow{Stride: stride, Kind: kind}
			for _, s := range all {
				if s.Stride != stride || s.Kind != kind {
					continue
				}
				r.Width, r.Height = s.Width, s.Height
				r.N++
				r.Share += s.Share
				r.Area += s.Area
				r.AtBackground += s.AtBackground
				if s.Share > s.Area {
					r.Above++
				}
			}
			if r.N == 0 {
				continue
			}
			r.Resolution = fmt.Sprintf("%dx%d", r.Width, r.Height)
			r.Share /= float64(r.N)
			r.Area /= float64(r.N)
			r.Above /= float64(r.N)
			r.AtBackground /= float64(r.N)
			rows = append(rows, r)
		}
	}
	return rows
}

func (r attentionReport) writeTable(w io.Writer) error {
	fmt.Fprintf(w, "model %s: %d images (%d single-object prompts, %d two-object, x %d seeds; %d skipped: fewer objects found than named), DDIM %d steps, guidance %g\n",
		r.Model, r.Images, r.Prompts, r.Pairs, r.Seeds, r.Skipped, r.Steps, r.Guidance)
	fmt.Fprintf(w, "share: the word's cross-attention mass (mean over steps, heads and the layers of one resolution) inside its object's mask, or for background words outside every object; area: that region's fraction of the image, what a uniform map gives; "+
		"at bg px: the word's mean share of a background pixel's attention (what a swap of it changes there under injected maps)\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "RESOLUTION\tWORD\tN\tSHARE\tAREA\tSHARE/AREA\tSHARE > AREA\tAT BG PX\tUSED BY\t")
	for _, row := range r.Rows {
		var uses []string
		if row.Width == r.HeatMapGrid[0] && row.Height == r.HeatMapGrid[1] {
			uses = append(uses, "heat maps")
		}
		if row.Width == r.LocalBlendGrid[0] && row.Height == r.LocalBlendGrid[1] {
			uses = append(uses, "local blend")
		}
		used := strings.Join(uses, ", ")
		if used == "" {
			used = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.3f\t%.3f\t%.2f\t%.0f %%\t%.3f\t%s\t\n",
			row.Resolution, row.Kind, row.N, row.Share, row.Area, row.Share/row.Area, 100*row.Above, row.AtBackground, used)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\na background pixel's attention, split over every key position (each row adds up to 1):\n\n")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "RESOLUTION\tIMAGES\t")
	for _, k := range pixelKinds {
		fmt.Fprintf(tw, "%s\t", strings.ToUpper(k))
	}
	fmt.Fprintln(tw)
	for _, row := range r.BackgroundPixel {
		fmt.Fprintf(tw, "%s\t%d\t", row.Resolution, row.Images)
		for _, k := range pixelKinds {
			fmt.Fprintf(tw, "%.3f\t", row.Shares[k])
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}
