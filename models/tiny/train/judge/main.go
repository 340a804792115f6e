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

const usage = "usage: judge prompts -out DIR [-n N] [-seen] | judge score -images FILE.npy [-n N] [-seen]"

func run(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New(usage)
	}
	fs := flag.NewFlagSet("judge "+args[0], flag.ContinueOnError)
	n := fs.Int("n", 200, "number of prompts")
	seen := fs.Bool("seen", false, "prompts of triples training draws instead of held-out ones")
	out := fs.String("out", "", "prompts: directory to write into")
	images := fs.String("images", "", "score: the generated images")
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

func score(path string, prompts []scene.Caption) (eval.Tally, error) {
	shape, data, err := npy.ReadUint8(path)
	if err != nil {
		return eval.Tally{}, err
	}
	const s = scene.ImageSize
	if len(shape) != 4 || shape[1] != s || shape[2] != s || shape[3] != 3 || shape[0] == 0 || shape[0]%len(prompts) != 0 {
		return eval.Tally{}, fmt.Errorf("%s has shape %v; want [k*%d, %d, %d, 3] for the %d prompts", path, shape, len(prompts), s, s, len(prompts))
	}
	var t eval.Tally
	for i := 0; i < shape[0]; i++ {
		img := image.NewNRGBA(image.Rect(0, 0, s, s))
		px := data[i*s*s*3 : (i+1)*s*s*3]
		for p := 0; p < s*s; p++ {
			copy(img.Pix[4*p:4*p+3], px[3*p:3*p+3])
			img.Pix[4*p+3] = 255
		}
		if err := t.Add(prompts[i%len(prompts)], img); err != nil {
			return t, err
		}
	}
	return t, nil
}

func report(t eval.Tally) map[string]any {
	c, sh, p, sz, all, found := t.Rates()
	return map[string]any{"images": t.N, "colour": c, "shape": sh, "position": p, "size": sz, "all": all, "found": found,
		"position_named": t.PositionNamed, "size_named": t.SizeNamed}
}
