package main

import (
	"context"
	"fmt"
	"image"
	"image/draw"
	"image/png"
	"io"
	"math/rand/v2"
	"os"
	"time"

	"reword/backend/ort"
	"reword/models/tiny/eval"
	"reword/models/tiny/generate"
	"reword/models/tiny/scene"
)

func init() {
	registerBench(benchmark{
		name:    "model",
		summary: "tiny model generation accuracy via the evaluator",
		run:     benchModel,
	})
}

// benchModel generates the held-out evaluation prompts (scene.EvalPrompts:
// colour/shape/position triples never drawn in training) with several seeds
// and scores every image with the evaluator. It also scores VAE round trips
// of drawn scenes, the ceiling the decoder puts on any generation.
func benchModel(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench model", "", stderr)
	dir := fs.String("model", "models/tiny", "model directory (holding model.json)")
	nPrompts := fs.Int("prompts", 200, "held-out prompts to generate")
	nSeeds := fs.Int("seeds", 2, "seeds per prompt")
	steps := fs.Int("steps", 50, "DDIM steps")
	guidance := fs.Float64("guidance", 7.5, "classifier-free guidance scale")
	batch := fs.Int("batch", 25, "prompts per UNet batch")
	sdpa := fs.Bool("sdpa", false, "run the torch-SDPA layout UNet export instead of the classic one")
	threads := fs.Int("threads", 0, "ONNX Runtime threads (0: one per core)")
	grid := fs.String("grid", "", "write the first 64 generated images to this PNG file")
	seen := fs.Bool("seen", false, "score prompts built from triples training draws instead of the held-out ones")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *nPrompts < 1 || *nSeeds < 1 || *batch < 1 {
		return usageError("-prompts, -seeds and -batch must be positive")
	}
	p, err := generate.Open(*dir, *sdpa, ort.Options{Threads: *threads})
	if err != nil {
		return err
	}
	defer p.Close()

	// VAE round trips of drawn scenes.
	rng := rand.New(rand.NewPCG(11, 12))
	var drawn []*image.RGBA
	var drawnPrompts []scene.Caption
	for _, c := range scene.EvalPrompts(*nPrompts, 2) {
		s, err := scene.SceneFor(rng, c)
		if err != nil {
			return err
		}
		drawn = append(drawn, s.Render())
		drawnPrompts = append(drawnPrompts, c)
	}
	z, err := p.Encode(ctx, drawn)
	if err != nil {
		return err
	}
	round, err := p.Decode(ctx, z, len(drawn))
	if err != nil {
		return err
	}
	var vae modelTally
	for i, img := range round {
		if err := vae.add(drawnPrompts[i], img); err != nil {
			return err
		}
	}

	prompts := scene.EvalPrompts(*nPrompts, 1)
	promptSet := "held-out"
	if *seen {
		prompts, promptSet = scene.SeenPrompts(*nPrompts, 1), "seen"
	}
	var reqs []generate.Request
	var reqPrompts []scene.Caption
	for seed := 0; seed < *nSeeds; seed++ {
		for _, c := range prompts {
			reqs = append(reqs, generate.Request{Prompt: c.Text, Seed: uint64(seed)})
			reqPrompts = append(reqPrompts, c)
		}
	}
	var gen modelTally
	var kept []*image.RGBA
	start := time.Now()
	for i := 0; i < len(reqs); i += *batch {
		j := min(i+*batch, len(reqs))
		imgs, err := p.Generate(ctx, reqs[i:j], generate.Options{Steps: *steps, Guidance: *guidance})
		if err != nil {
			return err
		}
		for k, img := range imgs {
			if err := gen.add(reqPrompts[i+k], img); err != nil {
				return err
			}
			if len(kept) < 64 {
				kept = append(kept, img)
				fmt.Fprintf(stderr, "grid %d: %s\n", len(kept)-1, reqPrompts[i+k].Text)
			}
		}
		fmt.Fprintf(stderr, "\r%d/%d images", j, len(reqs))
	}
	fmt.Fprintln(stderr)
	elapsed := time.Since(start)

	layout := "classic"
	if *sdpa {
		layout = "sdpa"
	}
	fmt.Fprintf(stdout, "tiny model %s (UNet %s layout): %d %s prompts x %d seeds, DDIM %d steps, guidance %g\n",
		*dir, layout, *nPrompts, promptSet, *nSeeds, *steps, *guidance)
	fmt.Fprintf(stdout, "%-22s %7s %7s %9s %7s %7s %7s\n", "", "colour", "shape", "position", "size", "all", "found")
	gen.print(stdout, "generated")
	vae.print(stdout, "VAE round trip (drawn)")
	fmt.Fprintf(stdout, "position and size are scored only where the prompt names them (position: always, size: %d of %d)\n",
		gen.sizeNamed, gen.n)
	fmt.Fprintf(stdout, "generation: %.2f s per image (%d images, batch %d)\n", elapsed.Seconds()/float64(len(reqs)), len(reqs), *batch)
	if *grid != "" {
		if err := writeModelGrid(*grid, kept); err != nil {
			return err
		}
	}
	return nil
}

// modelTally counts correct attributes over images of single-object prompts.
type modelTally struct {
	n, found, colour, shape, position, positionNamed, size, sizeNamed, all int
}

func (t *modelTally) add(c scene.Caption, img image.Image) error {
	r, err := eval.Analyze(img)
	if err != nil {
		return err
	}
	v, err := eval.CheckSingle(c, r)
	if err != nil {
		return err
	}
	b := func(ok bool) int {
		if ok {
			return 1
		}
		return 0
	}
	t.n++
	t.found += b(v.Found)
	t.colour += b(v.Colour)
	t.shape += b(v.Shape)
	t.position += b(v.Position)
	t.positionNamed += b(v.NamesPosition)
	t.size += b(v.Size)
	t.sizeNamed += b(v.NamesSize)
	t.all += b(v.Found && v.Colour && v.Shape && (v.Position || !v.NamesPosition) && (v.Size || !v.NamesSize))
	return nil
}

func (t modelTally) print(w io.Writer, label string) {
	pct := func(a, n int) string {
		if n == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1f%%", 100*float64(a)/float64(n))
	}
	fmt.Fprintf(w, "%-22s %7s %7s %9s %7s %7s %7s\n", label, pct(t.colour, t.n), pct(t.shape, t.n),
		pct(t.position, t.positionNamed), pct(t.size, t.sizeNamed), pct(t.all, t.n), pct(t.found, t.n))
}

func writeModelGrid(path string, imgs []*image.RGBA) error {
	if len(imgs) == 0 {
		return fmt.Errorf("no images for the grid")
	}
	const cols = 8
	s := imgs[0].Bounds().Dx()
	rows := (len(imgs) + cols - 1) / cols
	grid := image.NewRGBA(image.Rect(0, 0, cols*s, rows*s))
	for i, img := range imgs {
		draw.Draw(grid, image.Rect((i%cols)*s, (i/cols)*s, (i%cols+1)*s, (i/cols+1)*s), img, image.Point{}, draw.Src)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, grid); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
