package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"reword/backend/diffusion"
	"reword/backend/diffusion/pngtext"
	"reword/backend/scheduler"
	"reword/shared/edit"
	"reword/shared/protocol"
)

func init() {
	register(command{
		name:    "generate",
		summary: "generate an image from a prompt",
		run:     runGenerate,
	})
}

// engineFlags are the flags every engine subcommand shares.
type engineFlags struct {
	model   *string
	threads *int
	json    *bool
}

func addEngineFlags(fs *flag.FlagSet) engineFlags {
	return engineFlags{
		model:   fs.String("model", defaultPath("models/tiny"), "model folder (diffusers-layout ONNX export with model.json, or an SD 1.x/2.x/XL export)"),
		threads: fs.Int("threads", 0, "ONNX Runtime threads (0 = one per core)"),
		json:    fs.Bool("json", false, "print a machine-readable JSON summary instead of text"),
	}
}

// load opens the model; writing the instrumented UNet into the model folder
// on first use is allowed, since the CLI user owns the folder.
func (f engineFlags) load() (*diffusion.Engine, error) {
	return diffusion.Load(*f.model, diffusion.Options{Threads: *f.threads, Instrument: true})
}

// samplingFlags are the flags of the sampling settings.
type samplingFlags struct {
	seed      *uint64
	steps     *int
	guidance  *float64
	scheduler *string
	negative  *string
}

func addSamplingFlags(fs *flag.FlagSet) samplingFlags {
	return samplingFlags{
		seed:      fs.Uint64("seed", 0, "seed of the initial noise (required)"),
		steps:     fs.Int("steps", 0, "diffusion steps (0 = the model's default)"),
		guidance:  fs.Float64("guidance", -1, "classifier-free guidance scale (default: the model's)"),
		scheduler: fs.String("scheduler", "", "sampler: "+strings.Join(scheduler.Names, " or ")+" (default "+scheduler.Names[0]+")"),
		negative:  fs.String("negative", "", "negative prompt"),
	}
}

func (s samplingFlags) guidancePtr() *float64 {
	if *s.guidance < 0 {
		return nil
	}
	return s.guidance
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func runGenerate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("generate", "", stderr)
	ef := addEngineFlags(fs)
	sf := addSamplingFlags(fs)
	prompt := fs.String("prompt", "", "the prompt (required)")
	out := fs.String("out", "", "PNG file to write (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usageError("unexpected arguments %q", fs.Args())
	case *prompt == "":
		return usageError("--prompt is required")
	case *out == "":
		return usageError("--out is required")
	case !flagSet(fs, "seed"):
		return usageError("--seed is required (pick any number; the same seed gives the same image)")
	}
	e, err := ef.load()
	if err != nil {
		return err
	}
	defer e.Close()
	req := diffusion.GenerateRequest{Prompt: *prompt, Negative: *sf.negative, Seed: *sf.seed, Steps: *sf.steps,
		Guidance: sf.guidancePtr(), Scheduler: *sf.scheduler}
	bar := newProgress(stderr, "generate")
	res, err := e.Generate(ctx, req, diffusion.RunOptions{}, bar.update)
	bar.done()
	if err != nil {
		return err
	}
	// The recipe: the spec that reproduces the image as an edit's source.
	recipe := edit.Spec{Source: *prompt, Negative: *sf.negative, Seed: sf.seed, Guidance: sf.guidancePtr(), Scheduler: *sf.scheduler, Model: e.Defaults().Model}
	if *sf.steps != 0 {
		recipe.Steps = sf.steps
	}
	if err := writeImage(*out, res.Images[0], recipe); err != nil {
		return err
	}
	return report(stdout, *ef.json, recipe, res, []string{*out})
}

// writeImage writes im as a PNG carrying spec's JSON.
func writeImage(path string, im diffusion.Image, spec edit.Spec) error {
	text, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pngtext.Encode(f, im.NRGBA(), pngtext.SpecKey, string(text)); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}

// runSummary is the --json output of generate and edit.
type runSummary struct {
	Spec         edit.Spec          `json:"spec"`
	Images       []imageSummary     `json:"images"`
	UNetRows     int                `json:"unet_rows"`
	SourceCached bool               `json:"source_cached"`
	Timings      map[string]float64 `json:"timings_ms"`
}

type imageSummary struct {
	Row    int    `json:"row"`
	Prompt string `json:"prompt"`
	Path   string `json:"path"`
}

func report(w io.Writer, asJSON bool, spec edit.Spec, res *diffusion.Result, paths []string) error {
	t := res.Timings
	if asJSON {
		s := runSummary{Spec: spec, UNetRows: res.UNetRows, SourceCached: res.SourceCached, Timings: map[string]float64{
			"inversion": protocol.Milliseconds(t.Inversion), "text_encoder": protocol.Milliseconds(t.TextEncoder), "steps": protocol.Milliseconds(t.Steps), "per_step": protocol.Milliseconds(t.PerStep()),
			"decode": protocol.Milliseconds(t.Decode), "first_preview": protocol.Milliseconds(t.FirstPreview), "total": protocol.Milliseconds(t.Total),
		}}
		for i, im := range res.Images {
			s.Images = append(s.Images, imageSummary{Row: im.Row, Prompt: im.Prompt, Path: paths[i]})
		}
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		return enc.Encode(s)
	}
	for i, im := range res.Images {
		fmt.Fprintf(w, "%s\t%q\n", paths[i], im.Prompt)
	}
	fmt.Fprintf(w, "%d steps in %v (%v per step, %d UNet rows), total %v\n",
		t.StepCount, t.Steps.Round(time.Millisecond), t.PerStep().Round(100*time.Microsecond), res.UNetRows, t.Total.Round(time.Millisecond))
	return nil
}

// progress draws a one-line progress bar on a terminal and nothing
// otherwise (so logs and pipes stay clean).
type progress struct {
	w     io.Writer
	label string
	on    bool
	drawn bool
}

func newProgress(w io.Writer, label string) *progress {
	on := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			on = true
		}
	}
	return &progress{w: w, label: label, on: on}
}

// update is a preview callback; previews arrive on one goroutine.
func (p *progress) update(pr diffusion.Preview) {
	if !p.on || pr.Final || pr.Total == 0 {
		return
	}
	const width = 30
	filled := pr.Step * width / pr.Total
	fmt.Fprintf(p.w, "\r%s [%s%s] step %d/%d", p.label, strings.Repeat("#", filled), strings.Repeat(".", width-filled), pr.Step, pr.Total)
	p.drawn = true
}

func (p *progress) done() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}

// outPath joins dir and name, creating dir.
func outPath(dir, name string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	return filepath.Join(dir, name), nil
}
