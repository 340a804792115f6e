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

	"reword/backend/diffusion"
	"reword/backend/scheduler"
	"reword/models/tiny/eval"
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
// on the engine and scores every image with the evaluator. It also scores
// the engine's VAE round trips of drawn scenes, the ceiling the decoder puts
// on any generation.
func benchModel(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench model", "", stderr)
	dir := fs.String("model", defaultPath("models/tiny"), "model folder (holding model.json)")
	nPrompts := fs.Int("prompts", 200, "held-out prompts to generate")
	nSeeds := fs.Int("seeds", 2, "seeds per prompt")
	promptSeeds := fs.Bool("prompt-seeds", false, "give each prompt its own seeds, drawn from its index, instead of seeds 0..N-1 "+
		"shared by every prompt (a shared seed is one initial noise for all prompts, so its misses come together)")
	steps := fs.Int("steps", 50, "DDIM steps")
	guidance := fs.Float64("guidance", -1, "classifier-free guidance scale (default: the model's)")
	threads := fs.Int("threads", 0, "ONNX Runtime threads (0: one per core)")
	grid := fs.String("grid", "", "write the first 64 generated images to this PNG file")
	imagesDir := fs.String("images", "", "write every generated image to this folder (created; must hold no index.tsv), "+
		"with index.tsv: file, prompt, seed and what the evaluator found, for checking its verdicts by eye")
	seen := fs.Bool("seen", false, "score prompts built from triples training draws instead of the held-out ones")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError("unexpected arguments %q", fs.Args())
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"prompts", *nPrompts}, {"seeds", *nSeeds}, {"steps", *steps}} {
		if f.v < 1 {
			return usageError("--%s is %d: want 1 or more", f.name, f.v)
		}
	}
	// Writing the instrumented UNet into the model folder on first use is
	// allowed, as for every engine subcommand.
	e, err := diffusion.Load(*dir, diffusion.Options{Threads: *threads, Instrument: true})
	if err != nil {
		return err
	}
	defer e.Close()
	if err := needSceneImages(e); err != nil {
		return err
	}
	// The folder is made once the run can start (see bench edit).
	var images *imageFolder
	if *imagesDir != "" {
		if images, err = newImageFolder(*imagesDir, modelImageColumns...); err != nil {
			return err
		}
		defer images.close()
	}

	vae, vaeShapes, err := scoreVAERoundTrips(ctx, e, *nPrompts)
	if err != nil {
		return err
	}
	prompts := scene.EvalPrompts(*nPrompts, 1)
	promptSet := "held-out"
	if *seen {
		prompts, promptSet = scene.SeenPrompts(*nPrompts, 1), "seen"
	}
	start := time.Now()
	if *guidance < 0 {
		*guidance = e.Manifest().Defaults.GuidanceScale
	}
	seedFor, seeding := sharedSeed, fmt.Sprintf("seeds 0..%d, shared by every prompt", *nSeeds-1)
	if *promptSeeds {
		seedFor, seeding = promptSeed, "each prompt's own, drawn from its index; seed k is the k-th of each prompt's seeds"
	}
	perSeed, genTables, kept, err := scoreGenerations(ctx, e, prompts, *nSeeds, seedFor, *steps, guidance, images, stderr)
	if err != nil {
		return err
	}
	if err := images.close(); err != nil {
		return err
	}
	elapsed := time.Since(start)
	total := len(prompts) * *nSeeds
	var gen eval.Tally
	for _, t := range perSeed {
		gen.Merge(t)
	}

	fmt.Fprintf(stdout, "model %s (engine): %d %s prompts x %d seeds (%s), DDIM %d steps, guidance %g\n",
		*dir, len(prompts), promptSet, *nSeeds, seeding, *steps, *guidance)
	eval.PrintHeader(stdout)
	if *nSeeds > 1 {
		for seed, t := range perSeed {
			t.PrintRow(stdout, fmt.Sprintf("generated, seed %d", seed))
		}
	}
	gen.PrintRow(stdout, "generated")
	vae.PrintRow(stdout, "VAE round trip (drawn)")
	fmt.Fprintf(stdout, "position, size and background are scored only where the prompt names them (position: %d of %d, size: %d of %d, background: %d of %d); \"all\" leaves the background out\n",
		gen.PositionNamed, gen.N, gen.SizeNamed, gen.N, gen.BackgroundNamed, gen.N)
	fmt.Fprintln(stdout, "shape kept, by shape and size:")
	genTables.shapes.Print(stdout, "generated")
	vaeShapes.Print(stdout, "VAE round trip (drawn)")
	fmt.Fprintln(stdout, "object colour, by colour:")
	genTables.colours.Print(stdout, "generated")
	fmt.Fprintln(stdout, "object size, by size:")
	genTables.sizes.Print(stdout, "generated")
	fmt.Fprintln(stdout, "object position, by position:")
	if *nSeeds > 1 {
		for seed, t := range genTables.seedPositions {
			t.Print(stdout, fmt.Sprintf("generated, seed %d", seed))
		}
	}
	genTables.positions.Print(stdout, "generated")
	fmt.Fprintln(stdout, "named background, by background:")
	genTables.backgrounds.Print(stdout, "generated")
	fmt.Fprintf(stdout, "generation: %.2f s per image (%d images, one engine run each)\n", elapsed.Seconds()/float64(total), total)
	if *grid != "" {
		if err := writeModelGrid(*grid, kept); err != nil {
			return err
		}
	}
	return nil
}

// scoreVAERoundTrips scores the engine's VAE round trips of n drawn scenes,
// each passed as a PNG photo: the ceiling the decoder puts on any
// generation. The shape table counts each scene under its drawn size.
func scoreVAERoundTrips(ctx context.Context, e *diffusion.Engine, n int) (eval.Tally, eval.ShapeTable, error) {
	rng := rand.New(rand.NewPCG(11, 12))
	var vae eval.Tally
	var shapes eval.ShapeTable
	for _, c := range scene.EvalPrompts(n, 2) {
		s, err := scene.SceneFor(rng, c)
		if err != nil {
			return vae, shapes, err
		}
		rt, err := roundTrip(ctx, e, s)
		if err != nil {
			return vae, shapes, err
		}
		j, err := vae.Judge(c, rt.NRGBA())
		if err != nil {
			return vae, shapes, err
		}
		o := s.Objects[0]
		shapes.Add(o.Shape, o.Size.String(), j.Shape)
	}
	return vae, shapes, nil
}

// promptSize is the size column a generated image of one-object prompt c
// counts under: the size the prompt names, or eval.SizeUnnamed.
func promptSize(c scene.Caption) string {
	if m := c.Mentions[0]; m.NamesSize {
		return m.Size.String()
	}
	return eval.SizeUnnamed
}

// generationTables break the generated images' scores down by what their
// prompts named, over every seed.
type generationTables struct {
	shapes      eval.ShapeTable
	colours     eval.ColourTable
	sizes       eval.SizeTable
	backgrounds eval.BackgroundTable
	positions   eval.PositionTable
	// seedPositions holds one position table per seed: a shared seed is one
	// initial noise, and a noise that overrides the position words shows
	// only in its own table.
	seedPositions []eval.PositionTable
}

// sharedSeed gives every prompt seed k as its k-th seed: one initial noise
// per seed for all prompts, as the READMEs' tables were measured unless they
// say otherwise.
func sharedSeed(prompt, k int) uint64 { return uint64(k) }

// promptSeed is the k-th seed of the prompt-th prompt under -prompt-seeds:
// each image its own initial noise, so that a rate over N prompts × S seeds
// rests on N·S noises, not S, and fixed by (prompt, k) so that two models'
// runs compare image by image. Seeds stay below a million, as bench edit's.
func promptSeed(prompt, k int) uint64 {
	return rand.New(rand.NewPCG(uint64(prompt), uint64(k))).Uint64() % 1_000_000
}

// scoreGenerations generates every prompt at nSeeds seeds, the k-th being
// seedFor(prompt index, k), and scores each image, one tally per k so that
// the report shows how much the numbers move between seeds, not only their
// mean, and one set of tables over every seed. It keeps the first 64 images
// for the grid and writes every image to images when it is not nil.
func scoreGenerations(ctx context.Context, e *diffusion.Engine, prompts []scene.Caption, nSeeds int, seedFor func(prompt, k int) uint64,
	steps int, guidance *float64, images *imageFolder, progress io.Writer) (perSeed []eval.Tally, tables generationTables, kept []image.Image, err error) {
	perSeed = make([]eval.Tally, nSeeds)
	tables.seedPositions = make([]eval.PositionTable, nSeeds)
	total, done := len(prompts)*nSeeds, 0
	for k := 0; k < nSeeds; k++ {
		for i, c := range prompts {
			seed := seedFor(i, k)
			req := diffusion.GenerateRequest{Prompt: c.Text, Seed: seed, Steps: steps, Guidance: guidance, Scheduler: scheduler.DDIMName}
			res, err := e.Generate(ctx, req, diffusion.RunOptions{NoSourceCache: true}, nil)
			if err != nil {
				return nil, tables, nil, err
			}
			img := res.Images[0].NRGBA()
			j, err := perSeed[k].Judge(c, img)
			if err != nil {
				return nil, tables, nil, err
			}
			m := c.Mentions[0]
			tables.shapes.Add(m.Shape, promptSize(c), j.Shape)
			if m.NamesColour {
				tables.colours.Add(m.Colour, j.Object)
			}
			if m.NamesSize {
				tables.sizes.Add(m.Size, j.Object)
			}
			if m.NamesPosition {
				tables.positions.Add(m.Position, j.Object)
				tables.seedPositions[k].Add(m.Position, j.Object)
			}
			if j.BackgroundJudged {
				tables.backgrounds.Add(c.Background, j.Background)
			}
			if err := images.addGenerated(i, k, seed, c, img, j); err != nil {
				return nil, tables, nil, err
			}
			if len(kept) < 64 {
				kept = append(kept, img)
				fmt.Fprintf(progress, "grid %d: %s (seed %d)\n", len(kept)-1, c.Text, seed)
			}
			done++
			fmt.Fprintf(progress, "\r%d/%d images", done, total)
		}
	}
	fmt.Fprintln(progress)
	return perSeed, tables, kept, nil
}

func writeModelGrid(path string, imgs []image.Image) error {
	if len(imgs) == 0 {
		return fmt.Errorf("no images for the grid")
	}
	const cols = 8
	s := imgs[0].Bounds().Dx()
	rows := (len(imgs) + cols - 1) / cols
	grid := image.NewRGBA(image.Rect(0, 0, cols*s, rows*s))
	for i, img := range imgs {
		draw.Draw(grid, image.Rect((i%cols)*s, (i/cols)*s, (i%cols+1)*s, (i/cols+1)*s), img, img.Bounds().Min, draw.Src)
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
