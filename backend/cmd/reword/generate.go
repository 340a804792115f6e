package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
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
	seed     *uint64
	steps    *int
	guidance *float64 // nil: not given, the model's default
	// scheduler is "" when not given: the model's default.
	scheduler *string
	negative  *string
}

func addSamplingFlags(fs *flag.FlagSet) *samplingFlags {
	s := &samplingFlags{
		seed:      fs.Uint64("seed", 0, "seed of the initial noise (required)"),
		steps:     fs.Int("steps", 0, "diffusion steps (0 = the model's default)"),
		scheduler: fs.String("scheduler", "", "sampler: "+strings.Join(scheduler.Names, " or ")+" (default "+scheduler.Names[0]+")"),
		negative:  fs.String("negative", "", "negative prompt"),
	}
	fs.Var(optionalFloat{&s.guidance}, "guidance", fmt.Sprintf("classifier-free guidance scale, %v to %v (default: the model's)", edit.MinGuidance, edit.MaxGuidance))
	return s
}

// check checks the flags that need no model, so that a mistake is
// reported before the model loads, in the flags' own words. The model's
// own choices (its samplers) are checked when it has loaded.
func (s *samplingFlags) check() error {
	if err := checkSteps(*s.steps); err != nil {
		return err
	}
	if err := checkGuidance(s.guidance); err != nil {
		return err
	}
	if n := *s.scheduler; n != "" && !slices.Contains(scheduler.Names, n) {
		return usageError("--scheduler %q: want one of %s (leave it out for the model's default)", n, strings.Join(scheduler.Names, ", "))
	}
	return nil
}

// checkSteps checks a --steps flag, whose 0 is "the model's default".
func checkSteps(n int) error {
	if n != 0 && (n < edit.MinSteps || n > edit.MaxSteps) {
		return usageError("--steps %d: want %d to %d diffusion steps (0 or left out: the model's default)", n, edit.MinSteps, edit.MaxSteps)
	}
	return nil
}

// checkGuidance checks a --guidance flag (nil: not given).
func checkGuidance(g *float64) error {
	if g != nil && !(*g >= edit.MinGuidance && *g <= edit.MaxGuidance) {
		return usageError("--guidance %v: want a scale from %v to %v (leave it out for the model's default)", *g, edit.MinGuidance, edit.MaxGuidance)
	}
	return nil
}

// checkSpec reports the problems of spec that the model plays no part in
// (words missing from the prompts, a kind the prompts do not allow, a spec
// too big for an edit link, …) as a usage error, before the model loads.
func checkSpec(spec edit.Spec) error {
	if p := spec.CheckFields(); len(p) > 0 {
		return usageError("%v", p)
	}
	// Resolving adds the model's defaults, which only lengthen the link:
	// a spec whose link is too long now would be refused after the model
	// loaded.
	if _, err := edit.EncodeLink(spec); err != nil {
		return usageError("the prompts are too long for Reword, whose every edit fits in an edit link: %v", err)
	}
	return nil
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
	out := fs.String("out", "", "PNG file to write, in an existing folder (required; an existing file is never overwritten)")
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
	if err := sf.check(); err != nil {
		return err
	}
	// The recipe: the spec that reproduces the image as an edit's source.
	recipe := edit.Spec{Source: *prompt, Negative: *sf.negative, Seed: sf.seed, Guidance: sf.guidance, Scheduler: *sf.scheduler}
	if *sf.steps != 0 {
		recipe.Steps = sf.steps
	}
	// A one-target spec checks exactly the fields a generation has, as
	// the engine checks it.
	check := recipe
	check.Targets = []string{*prompt}
	if err := checkSpec(check); err != nil {
		return err
	}
	if err := checkNewFile(*out); err != nil {
		return err
	}
	e, err := ef.load()
	if err != nil {
		return err
	}
	defer e.Close()
	req := diffusion.GenerateRequest{Prompt: *prompt, Negative: *sf.negative, Seed: *sf.seed, Steps: *sf.steps,
		Guidance: sf.guidance, Scheduler: *sf.scheduler}
	bar := newProgress(stderr, "generate")
	res, err := e.Generate(ctx, req, diffusion.RunOptions{}, bar.update)
	bar.done()
	if err != nil {
		return err
	}
	recipe.Model = e.Defaults().Model
	if err := writeImage(*out, res.Images[0], recipe); err != nil {
		return err
	}
	return report(stdout, *ef.json, recipe, res, []string{*out})
}

// checkNewFile checks, before any model runs, that the --out file can be
// written: its folder exists and nothing is there yet. Reword never
// overwrites an image: the one there may be the only copy of an earlier
// run.
func checkNewFile(path string) error {
	st, err := os.Lstat(path)
	switch {
	case err == nil && st.IsDir():
		return usageError("--out %s is a folder: name the PNG file to write, e.g. %s", path, filepath.Join(path, "image.png"))
	case err == nil:
		return usageError("--out %s already exists: name a new file, or move the old one away first (reword never overwrites an image)", path)
	case !errors.Is(err, os.ErrNotExist):
		return err
	}
	dir := filepath.Dir(path)
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return usageError("--out %s: the folder %s does not exist; create it first", path, dir)
	}
	return nil
}

// checkNewFolder checks, before any model runs, that --out dir can take
// an edit's images: it creates dir if needed and refuses a folder holding
// any image an edit or an inversion writes (from an earlier run). Reword
// never overwrites an image, and writing only some of the names would mix
// two runs' images, such as an earlier run's target-2.png beside a
// one-target edit.
func checkNewFolder(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return usageError("--out %s: %v", dir, err)
	}
	names := []string{"source.png", "reconstruction.png"}
	for i := 1; i <= edit.MaxTargets; i++ {
		names = append(names, targetFile(i))
	}
	for _, name := range names {
		p := filepath.Join(dir, name)
		if _, err := os.Lstat(p); err == nil {
			return usageError("--out %s already holds %s from an earlier run: name a new or empty folder, or move the earlier images away first (reword never overwrites an image)", dir, name)
		} else if !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// targetFile names the image of target i (1-based).
func targetFile(i int) string { return fmt.Sprintf("target-%d.png", i) }

// writeImage writes im as a new PNG file carrying spec's JSON. It never
// replaces a file: one created at path since checkNewFile or
// checkNewFolder looked is an error, and is left as it is.
func writeImage(path string, im diffusion.Image, spec edit.Spec) error {
	text, err := json.Marshal(spec)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if err := pngtext.Encode(f, im.NRGBA(), pngtext.SpecEntries(text)...); err != nil {
		f.Close()
		os.Remove(path) // ours (O_EXCL), and only part of an image
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
