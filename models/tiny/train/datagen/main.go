// Command datagen writes the tiny model's training set: scenes drawn by
// reword/models/tiny/scene with one caption each, tokenized with the CLIP
// tokenizer the engine uses (reword/shared/clip), as NumPy files the Python
// trainer reads.
//
// Output, in the directory named by -out:
//
//	images.npy     uint8 [N, 64, 64, 3]  RGB scenes
//	input_ids.npy  int32 [N, 77]         CLIP ids of the captions, padded with EOS
//	captions.txt   one caption per line, in the same order
//	object_masks.npy  uint8 [N, 2, 16, 16]  per object, how many of the 16 pixels
//	               of each 4×4 patch (one latent cell) its mask covers; zeros
//	               for a missing second object
//	token_regions.npy int8 [N, 77]  the scene region each token describes:
//	               0 the background, i+1 object i, -1 none (BOS, EOS, "and")
//	info.json      seed, count, the ids of the empty caption (for caption
//	               dropout) and swap_groups: the ids of the colour words and
//	               of the shape words, each group words one object attribute
//	               may take (for the word-swap consistency loss), and
//	               swap_group_words: the same words spelled out, in the same
//	               order (so that a recipe can name them)
//
// With -twins, also each scene's exact colour swap (scene.ColourTwin: one
// object whose colour the caption names, recoloured, nothing else moved),
// for the training term that asks an edit run with the scene's attention
// maps put in to draw exactly the swapped scene:
//
//	twin_images.npy     uint8 [N, 64, 64, 3]  the swapped scenes (zeros: none)
//	twin_input_ids.npy  int32 [N, 77]         their captions' CLIP ids
//	twin_objects.npy    int8 [N]              the recoloured object, -1 for a
//	                    scene whose caption names no colour (no twin)
//
// With -background-twins, also each scene's exact background swap
// (scene.BackgroundTwin: the same objects on another background, the
// caption with that background's phrase added), for the same term on
// Prompt-to-Prompt's other edit, the refinement, whose maps are put in
// through the token alignment the engine computes (align.RefineMapper):
//
//	background_twin_images.npy       uint8 [N, 64, 64, 3]  the twins (zeros: none)
//	background_twin_input_ids.npy    int32 [N, 77]         their captions' CLIP ids
//	background_twin_gather.npy       int8 [N, 77]          for each of the twin
//	                                 caption's 77 tokens, the caption's token whose
//	                                 maps it takes; -1 for the added phrase's tokens
//	                                 (they draw with their own) and for scenes
//	                                 without a twin
//	background_twin_backgrounds.npy  int8 [N]              the twin's background,
//	                                 -1 for a scene whose caption names one (no twin)
//
// The masks and regions feed the training loss that grounds each word's
// cross-attention in the part of the image it describes.
// The data set is a pure function of (-seed, -n): scene i is
// scene.TrainingExample(seed, i), drawn on any number of goroutines.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"

	"reword/models/tiny/scene"
	"reword/models/tiny/train/npy"
	"reword/shared/align"
	"reword/shared/clip"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "datagen:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("datagen", flag.ContinueOnError)
	out := fs.String("out", "", "directory to write the data set into (created if missing)")
	n := fs.Int("n", 60000, "number of scenes")
	seed := fs.Uint64("seed", 1, "data set seed")
	twins := fs.Bool("twins", false, "also write each scene's exact colour swap (twin_*.npy)")
	backgroundTwins := fs.Bool("background-twins", false, "also write each scene's exact background swap, for captions that name no background (background_twin_*.npy)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("-out is required")
	}
	if *n <= 0 {
		return fmt.Errorf("-n must be positive, got %d", *n)
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		return err
	}
	tok, err := clip.New()
	if err != nil {
		return fmt.Errorf("loading the CLIP tokenizer: %w", err)
	}
	d, err := draw(tok, *seed, *n, twinSets{colour: *twins, background: *backgroundTwins})
	if err != nil {
		return err
	}
	return d.write(*out, tok)
}

// dataset is the drawn training set, each array flat in scene order.
type dataset struct {
	seed     uint64
	n        int
	images   []byte  // [n, ImageSize, ImageSize, 3] RGB
	ids      []int32 // [n, ContextLength]
	captions []string
	masks    []byte // [n, maxObjects, latentSize, latentSize]
	regions  []byte // [n, ContextLength], int8 values
	// The colour-swap twins, when drawn (-twins): images and ids as above,
	// twinObjects the recoloured object or -1 (int8 values).
	twins       twinSets
	twinImages  []byte
	twinIDs     []int32
	twinObjects []byte
	// The background-swap twins, when drawn (-background-twins): images
	// and ids as above, bgTwinGather the refinement's token alignment and
	// bgTwinBackgrounds the twin's background or -1 (int8 values).
	bgTwinImages      []byte
	bgTwinIDs         []int32
	bgTwinGather      []byte
	bgTwinBackgrounds []byte
}

// twinSets says which twins a data set holds besides its scenes.
type twinSets struct{ colour, background bool }

// twinStream and backgroundTwinStream separate the twins' random choices
// from the scenes' and from each other's: the data set's scenes are the same
// with and without twins, and each kind of twin with and without the other.
const (
	twinStream           = 0x7477696e // "twin"
	backgroundTwinStream = 0x62677477 // "bgtw"
)

const imageBytes = scene.ImageSize * scene.ImageSize * 3

// draw draws scenes 0…n−1 of seed on one goroutine per core.
func draw(tok *clip.Tokenizer, seed uint64, n int, twins twinSets) (*dataset, error) {
	d := &dataset{
		seed:     seed,
		n:        n,
		images:   make([]byte, n*imageBytes),
		ids:      make([]int32, n*clip.ContextLength),
		captions: make([]string, n),
		masks:    make([]byte, n*maskBytes),
		regions:  make([]byte, n*clip.ContextLength),
		twins:    twins,
	}
	if twins.colour {
		d.twinImages = make([]byte, n*imageBytes)
		d.twinIDs = make([]int32, n*clip.ContextLength)
		d.twinObjects = make([]byte, n)
	}
	if twins.background {
		d.bgTwinImages = make([]byte, n*imageBytes)
		d.bgTwinIDs = make([]int32, n*clip.ContextLength)
		d.bgTwinGather = make([]byte, n*clip.ContextLength)
		d.bgTwinBackgrounds = make([]byte, n)
	}
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	errs := make([]error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < n; i += workers {
				if err := d.drawScene(tok, i); err != nil {
					errs[w] = err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return d, nil
}

// drawScene fills scene i's rows of every array.
func (d *dataset) drawScene(tok *clip.Tokenizer, i int) error {
	s, c := scene.TrainingExample(d.seed, i)
	copyRGB(d.images[i*imageBytes:(i+1)*imageBytes], s)
	enc := tok.Encode(c.Text)
	if enc.Truncated.Dropped > 0 {
		return fmt.Errorf("caption %q of scene %d does not fit in %d tokens", c.Text, i, clip.ContextLength)
	}
	copy(d.ids[i*clip.ContextLength:], enc.Padded(clip.ContextLength))
	if d.twins.colour {
		if err := d.drawTwin(tok, i, s, c, len(enc.IDs)); err != nil {
			return err
		}
	}
	if d.twins.background {
		if err := d.drawBackgroundTwin(tok, i, s, c, enc); err != nil {
			return err
		}
	}
	d.captions[i] = c.Text
	if err := latentMasks(s, d.masks[i*maskBytes:(i+1)*maskBytes]); err != nil {
		return fmt.Errorf("scene %d: %w", i, err)
	}
	r, err := tokenRegions(enc, c)
	if err != nil {
		return fmt.Errorf("scene %d: %w", i, err)
	}
	for k, v := range r {
		d.regions[i*clip.ContextLength+k] = byte(v)
	}
	return nil
}

// drawTwin fills scene i's rows of the twin arrays. A twin's caption must
// have as many tokens as the scene's (nTokens): the edit it stands for is a
// word swap, whose maps are put in token for token.
func (d *dataset) drawTwin(tok *clip.Tokenizer, i int, s scene.Scene, c scene.Caption, nTokens int) error {
	d.twinObjects[i] = byte(0xff) // int8 -1: no twin
	rng := rand.New(rand.NewPCG(d.seed^twinStream, uint64(i)))
	twin, tc, object, ok := scene.ColourTwin(rng, s, c)
	if !ok {
		return nil
	}
	enc := tok.Encode(tc.Text)
	if len(enc.IDs) != nTokens {
		return fmt.Errorf("scene %d: the twin caption %q has %d tokens, the caption %q %d", i, tc.Text, len(enc.IDs), c.Text, nTokens)
	}
	copyRGB(d.twinImages[i*imageBytes:(i+1)*imageBytes], twin)
	copy(d.twinIDs[i*clip.ContextLength:], enc.Padded(clip.ContextLength))
	d.twinObjects[i] = byte(object)
	return nil
}

// drawBackgroundTwin fills scene i's rows of the background twin arrays;
// enc is the scene's caption, tokenized. The gather row is the engine's
// refinement mapper for caption → twin caption, so that training puts the
// maps in where an edit would.
func (d *dataset) drawBackgroundTwin(tok *clip.Tokenizer, i int, s scene.Scene, c scene.Caption, enc clip.Encoding) error {
	d.bgTwinBackgrounds[i] = byte(0xff) // int8 -1: no twin
	gather := d.bgTwinGather[i*clip.ContextLength : (i+1)*clip.ContextLength]
	for k := range gather {
		gather[k] = byte(0xff)
	}
	rng := rand.New(rand.NewPCG(d.seed^backgroundTwinStream, uint64(i)))
	twin, tc, ok := scene.BackgroundTwin(rng, s, c)
	if !ok {
		return nil
	}
	tenc := tok.Encode(tc.Text)
	if tenc.Truncated.Dropped > 0 {
		return fmt.Errorf("scene %d: the background twin's caption %q does not fit in %d tokens", i, tc.Text, clip.ContextLength)
	}
	from, keep := align.RefineMapper(enc.IDs, tenc.IDs)
	for k := range gather {
		if keep[k] == 1 {
			gather[k] = byte(int8(from[k]))
		}
	}
	copyRGB(d.bgTwinImages[i*imageBytes:(i+1)*imageBytes], twin)
	copy(d.bgTwinIDs[i*clip.ContextLength:], tenc.Padded(clip.ContextLength))
	d.bgTwinBackgrounds[i] = byte(twin.Background)
	return nil
}

// copyRGB renders s into dst as packed RGB.
func copyRGB(dst []byte, s scene.Scene) {
	img := s.Render()
	for p := 0; p < scene.ImageSize*scene.ImageSize; p++ {
		copy(dst[3*p:3*p+3], img.Pix[4*p:4*p+3])
	}
}

// write writes the files the package comment lists into out.
func (d *dataset) write(out string, tok *clip.Tokenizer) error {
	n := d.n
	if err := npy.Write(filepath.Join(out, "images.npy"), "|u1", []int{n, scene.ImageSize, scene.ImageSize, 3}, d.images); err != nil {
		return err
	}
	if err := npy.WriteInt32(filepath.Join(out, "input_ids.npy"), []int{n, clip.ContextLength}, d.ids); err != nil {
		return err
	}
	if err := npy.Write(filepath.Join(out, "object_masks.npy"), "|u1", []int{n, maxObjects, latentSize, latentSize}, d.masks); err != nil {
		return err
	}
	if err := npy.Write(filepath.Join(out, "token_regions.npy"), "|i1", []int{n, clip.ContextLength}, d.regions); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "captions.txt"), []byte(strings.Join(d.captions, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	if d.twins.colour {
		if err := npy.Write(filepath.Join(out, "twin_images.npy"), "|u1", []int{n, scene.ImageSize, scene.ImageSize, 3}, d.twinImages); err != nil {
			return err
		}
		if err := npy.WriteInt32(filepath.Join(out, "twin_input_ids.npy"), []int{n, clip.ContextLength}, d.twinIDs); err != nil {
			return err
		}
		if err := npy.Write(filepath.Join(out, "twin_objects.npy"), "|i1", []int{n}, d.twinObjects); err != nil {
			return err
		}
	}
	if d.twins.background {
		if err := npy.Write(filepath.Join(out, "background_twin_images.npy"), "|u1", []int{n, scene.ImageSize, scene.ImageSize, 3}, d.bgTwinImages); err != nil {
			return err
		}
		if err := npy.WriteInt32(filepath.Join(out, "background_twin_input_ids.npy"), []int{n, clip.ContextLength}, d.bgTwinIDs); err != nil {
			return err
		}
		if err := npy.Write(filepath.Join(out, "background_twin_gather.npy"), "|i1", []int{n, clip.ContextLength}, d.bgTwinGather); err != nil {
			return err
		}
		if err := npy.Write(filepath.Join(out, "background_twin_backgrounds.npy"), "|i1", []int{n}, d.bgTwinBackgrounds); err != nil {
			return err
		}
	}
	groups, words, err := swapGroups(tok)
	if err != nil {
		return err
	}
	info := map[string]any{
		"seed":             d.seed,
		"count":            n,
		"image_size":       scene.ImageSize,
		"max_tokens":       clip.ContextLength,
		"empty_input_ids":  tok.Encode("").Padded(clip.ContextLength),
		"swap_groups":      groups,
		"swap_group_words": words,
	}
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, "info.json"), append(b, '\n'), 0o644)
}

// The latent grid the masks are written at: the VAE downsamples by 4.
const (
	maxObjects = 2
	patch      = 4
	latentSize = scene.ImageSize / patch
	maskBytes  = maxObjects * latentSize * latentSize
)

// latentMasks writes, for each object of s, how many pixels of every 4×4
// patch its mask covers into dst ([maxObjects, latentSize, latentSize]).
func latentMasks(s scene.Scene, dst []byte) error {
	masks := s.ObjectMasks()
	if len(masks) > maxObjects {
		return fmt.Errorf("%d objects, the mask file holds %d", len(masks), maxObjects)
	}
	clear(dst)
	for o, m := range masks {
		for p, in := range m {
			if in {
				x, y := p%scene.ImageSize/patch, p/scene.ImageSize/patch
				dst[o*latentSize*latentSize+y*latentSize+x]++
			}
		}
	}
	return nil
}

// tokenRegions returns, for each of the clip.ContextLength padded token
// positions, the region of the caption word the token belongs to; BOS, EOS
// and padding get scene.NoRegion.
func tokenRegions(enc clip.Encoding, c scene.Caption) ([]int8, error) {
	// Byte ranges of the words in the text (words are joined by one space).
	starts := make([]int, len(c.Words))
	at := 0
	for i, w := range c.Words {
		starts[i] = at
		at += len(w.Text) + 1
	}
	if at-1 != len(c.Text) {
		return nil, fmt.Errorf("caption %q is not its words joined by spaces", c.Text)
	}
	out := make([]int8, clip.ContextLength)
	for i := range out {
		out[i] = int8(scene.NoRegion)
	}
	for k := 1; k < len(enc.IDs)-1; k++ { // content tokens only
		span := enc.Spans[k]
		w := sort.SearchInts(starts, span.Start+1) - 1
		if w < 0 || span.End > starts[w]+len(c.Words[w].Text) {
			return nil, fmt.Errorf("token %q of %q does not lie inside one word", enc.Tokens[k], c.Text)
		}
		out[k] = int8(c.Words[w].Region)
	}
	return out, nil
}

// swapGroups returns the CLIP ids of the colour words and of the shape
// words, in scene's order, and the words themselves. The trainer swaps such a
// word for another of its group to ask that the image away from the word's
// object not depend on it.
func swapGroups(tok *clip.Tokenizer) ([][]int32, [][]string, error) {
	var colours, shapes []string
	for _, c := range scene.Colours {
		colours = append(colours, c.String())
	}
	for _, s := range scene.Shapes {
		shapes = append(shapes, s.String())
	}
	var groups [][]int32
	for _, words := range [][]string{colours, shapes} {
		var ids []int32
		for _, w := range words {
			// IDs frame the word's tokens with BOS and EOS.
			enc := tok.Encode(w)
			if len(enc.IDs) != 3 {
				return nil, nil, fmt.Errorf("the word %q is %d CLIP tokens; a swap needs words of one token", w, len(enc.IDs)-2)
			}
			ids = append(ids, enc.IDs[1])
		}
		groups = append(groups, ids)
	}
	return groups, [][]string{colours, shapes}, nil
}
