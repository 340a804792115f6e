// Command judge scores the tiny model during training, with the same prompts
// and evaluator as `reword bench model`, so that a training run can be
// judged at checkpoints without exporting ONNX files.
//
//	judge prompts -out DIR [-n 200] [-seen]
//	    writes DIR/input_ids.npy (int32 [n,77], CLIP ids padded with EOS)
//	    and DIR/prompts.txt: the held-out evaluation prompts
//	    (scene.EvalPrompts(n, 1)), or with -seen the seen ones
//	    (scene.SeenPrompts(n, 1)), as bench model generates them.
//	judge score -images FILE.npy [-n 200] [-seen]
//	    reads uint8 [k*n, 64, 64, 3] images, k seeds of the same n prompts
//	    one after the other, and prints one JSON object of the rates
//	    (colour, shape, position, size, all, found) and counts.
//	judge backgrounds -images FILE.npy
//	    reads uint8 [k, 64, 64, 3] images of any prompts and prints one JSON
//	    object {"backgrounds": [...]}: the background the evaluator sees in
//	    each image, in order (leak.py counts them).
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"io"
	"os"
	"path/filepath"
	"strings"

	"reword/models/tiny/eval"
	"reword/models/tiny/scene"
	"reword/models/tiny/train/npy"
	"reword/shared/clip"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "judge:", err)
		os.Exit(2)
	}
}

const usage = "usage: judge prompts -out DIR [-n N] [-seen] | judge score -images FILE.npy [-n N] [-seen] | judge backgrounds -images FILE.npy"

func run(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	fs := flag.NewFlagSet("judge "+args[0], flag.ContinueOnError)
	n := fs.Int("n", 200, "number of prompts")
	seen := fs.Bool("seen", false, "prompts of triples training draws instead of held-out ones")
	out := fs.String("out", "", "prompts: directory to write into")
	images := fs.String("images", "", "score, backgrounds: the generated images")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *n < 1 || fs.NArg() != 0 {
		return fmt.Errorf("want a positive -n and no arguments; %s", usage)
	}
	prompts := scene.EvalPrompts(*n, 1)
	if *seen {
		prompts = scene.SeenPrompts(*n, 1)
	}
	switch args[0] {
	case "prompts":
		if *out == "" {
			return errors.New("prompts: -out is required")
		}
		return writePrompts(*out, prompts)
	case "score":
		if *images == "" {
			return errors.New("score: -images is required")
		}
		t, err := score(*images, prompts)
		if err != nil {
			return err
		}
		return json.NewEncoder(stdout).Encode(report(t))
	case "backgrounds":
		if *images == "" {
			return errors.New("backgrounds: -images is required")
		}
		names, err := backgrounds(*images)
		if err != nil {
			return err
		}
		return json.NewEncoder(stdout).Encode(map[string][]string{"backgrounds": names})
	}
	return fmt.Errorf("unknown subcommand %q; %s", args[0], usage)
}

func writePrompts(dir string, prompts []scene.Caption) error {
	tok, err := clip.New()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	ids := make([]int32, 0, len(prompts)*clip.ContextLength)
	texts := make([]string, len(prompts))
	for i, c := range prompts {
		enc := tok.Encode(c.Text)
		if enc.Truncated.Dropped > 0 {
			return fmt.Errorf("prompt %q does not fit in %d tokens", c.Text, clip.ContextLength)
		}
		ids = append(ids, enc.Padded(clip.ContextLength)...)
		texts[i] = c.Text
	}
	if err := npy.WriteInt32(filepath.Join(dir, "input_ids.npy"), []int{len(prompts), clip.ContextLength}, ids); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "prompts.txt"), []byte(strings.Join(texts, "\n")+"\n"), 0o644)
}

// readImages reads uint8 [k, 64, 64, 3] images (k ≥ 1) written by numpy.
func readImages(path string) ([]*image.NRGBA, error) {
	shape, data, err := npy.ReadUint8(path)
	if err != nil {
		return nil, err
	}
	const s = scene.ImageSize
	if len(shape) != 4 || shape[1] != s || shape[2] != s || shape[3] != 3 || shape[0] == 0 {
		return nil, fmt.Errorf("%s has shape %v; want [k, %d, %d, 3] with k ≥ 1", path, shape, s, s)
	}
	imgs := make([]*image.NRGBA, shape[0])
	for i := range imgs {
		img := image.NewNRGBA(image.Rect(0, 0, s, s))
		px := data[i*s*s*3 : (i+1)*s*s*3]
		for p := 0; p < s*s; p++ {
			copy(img.Pix[4*p:4*p+3], px[3*p:3*p+3])
			img.Pix[4*p+3] = 255
		}
		imgs[i] = img
	}
	return imgs, nil
}

func score(path string, prompts []scene.Caption) (eval.Tally, error) {
	imgs, err := readImages(path)
	if err != nil {
		return eval.Tally{}, err
	}
	if len(imgs)%len(prompts) != 0 {
		return eval.Tally{}, fmt.Errorf("%s holds %d images; want k×%d for the %d prompts", path, len(imgs), len(prompts), len(prompts))
	}
	var t eval.Tally
	for i, img := range imgs {
		if err := t.Add(prompts[i%len(prompts)], img); err != nil {
			return t, err
		}
	}
	return t, nil
}

func backgrounds(path string) ([]string, error) {
	imgs, err := readImages(path)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(imgs))
	for i, img := range imgs {
		b, err := eval.Background(img)
		if err != nil {
			return nil, err
		}
		names[i] = b.String()
	}
	return names, nil
}

func report(t eval.Tally) map[string]any {
	c, sh, p, sz, all, found := t.Rates()
	return map[string]any{"images": t.N, "colour": c, "shape": sh, "position": p, "size": sz, "all": all, "found": found,
		"position_named": t.PositionNamed, "size_named": t.SizeNamed}
}
