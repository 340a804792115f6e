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
//	info.json      seed, count and the ids of the empty caption (for caption dropout)
//
// The data set is a pure function of (-seed, -n): scene i is
// scene.TrainingExample(seed, i), drawn on any number of goroutines.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"reword/models/tiny/scene"
	"reword/models/tiny/train/npy"
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
	const px = scene.ImageSize * scene.ImageSize * 3
	images := make([]byte, *n*px)
	ids := make([]int32, *n*clip.ContextLength)
	captions := make([]string, *n)

	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	errs := make([]error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < *n; i += workers {
				s, c := scene.TrainingExample(*seed, i)
				img := s.Render()
				dst := images[i*px : (i+1)*px]
				for p := 0; p < scene.ImageSize*scene.ImageSize; p++ {
					copy(dst[3*p:3*p+3], img.Pix[4*p:4*p+3])
				}
				enc := tok.Encode(c.Text)
				if enc.Truncated.Dropped > 0 {
					errs[w] = fmt.Errorf("caption %q of scene %d does not fit in %d tokens", c.Text, i, clip.ContextLength)
					return
				}
				copy(ids[i*clip.ContextLength:], enc.Padded(clip.ContextLength))
				captions[i] = c.Text
			}
		}(w)
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}

	if err := npy.Write(filepath.Join(*out, "images.npy"), "|u1", []int{*n, scene.ImageSize, scene.ImageSize, 3}, images); err != nil {
		return err
	}
	if err := npy.WriteInt32(filepath.Join(*out, "input_ids.npy"), []int{*n, clip.ContextLength}, ids); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(*out, "captions.txt"), []byte(strings.Join(captions, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	info := map[string]any{
		"seed":            *seed,
		"count":           *n,
		"image_size":      scene.ImageSize,
		"max_tokens":      clip.ContextLength,
		"empty_input_ids": tok.Encode("").Padded(clip.ContextLength),
	}
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(*out, "info.json"), append(b, '\n'), 0o644)
}
