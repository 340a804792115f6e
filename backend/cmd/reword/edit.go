package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"reword/backend/diffusion"
	"reword/shared/edit"
)

func init() {
	register(command{
		name:    "edit",
		summary: "edit a generated image by rewording its prompt",
		run:     runEdit,
	})
}

// listFlag collects a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ", ") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func runEdit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("edit", "", stderr)
	ef := addEngineFlags(fs)
	sf := addSamplingFlags(fs)
	prompt := fs.String("prompt", "", "the source prompt (required)")
	var targets, crossWords, reweights listFlag
	fs.Var(&targets, "to", "a target prompt (repeat for up to 4 targets; required)")
	cross := fs.Float64("cross", -1, "fraction of the steps whose cross-attention is replaced (default: the model's, 0.8)")
	fs.Var(&crossWords, "cross-word", "per-word cross window, word=fraction (repeatable)")
	self := fs.Float64("self", -1, "fraction of the steps whose self-attention is replaced (default: the model's, 0.4)")
	fs.Var(&reweights, "reweight", "scale the attention to a target word, word=factor (repeatable; -2..2 is the useful range)")
	blend := fs.String("blend", "", "local-blend words, comma-separated (e.g. cat,tiger): outside them the targets keep the source")
	baseline := fs.Bool("baseline", false, "no attention control: each target is its prompt alone with the same seed")
	out := fs.String("out", "", "folder to write source.png, target-1.png, … into (required)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	switch {
	case fs.NArg() > 0:
		return usageError("unexpected arguments %q", fs.Args())
	case *prompt == "":
		return usageError("--prompt is required")
	case len(targets) == 0:
		return usageError("give at least one --to target prompt")
	case *out == "":
		return usageError("--out is required")
	case !flagSet(fs, "seed"):
		return usageError("--seed is required (pick any number; the same seed gives the same source image)")
	}
	spec := edit.Spec{Source: *prompt, Targets: targets, Negative: *sf.negative, Seed: sf.seed,
		Guidance: sf.guidancePtr(), Scheduler: *sf.scheduler}
	if *sf.steps != 0 {
		spec.Steps = sf.steps
	}
	if *cross >= 0 {
		spec.Cross = &edit.Window{End: *cross}
	}
	if *self >= 0 {
		spec.Self = &edit.Window{End: *self}
	}
	var err error
	if spec.CrossWords, err = wordValues(crossWords, "cross-word", func(f float64) edit.Window { return edit.Window{End: f} }); err != nil {
		return err
	}
	if spec.Reweights, err = wordValues(reweights, "reweight", func(f float64) float64 { return f }); err != nil {
		return err
	}
	for _, w := range strings.Split(*blend, ",") {
		if w = strings.TrimSpace(w); w != "" {
			spec.Blend = append(spec.Blend, w)
		}
	}

	e, err := ef.load()
	if err != nil {
		return err
	}
	defer e.Close()
	spec.Model = e.Defaults().Model
	bar := newProgress(stderr, "edit")
	res, err := e.Edit(ctx, spec, diffusion.RunOptions{Baseline: *baseline}, bar.update)
	bar.done()
	if err != nil {
		return err
	}
	var paths []string
	for _, im := range res.Images {
		name := "source.png"
		if im.Row > 0 {
			name = fmt.Sprintf("target-%d.png", im.Row)
		}
		p, err := outPath(*out, name)
		if err != nil {
			return err
		}
		if err := writeImage(p, im, spec); err != nil {
			return err
		}
		paths = append(paths, p)
	}
	return report(stdout, *ef.json, spec, res, paths)
}

// wordValues parses word=number flags into a map.
func wordValues[V any](list []string, flagName string, conv func(float64) V) (map[string]V, error) {
	if len(list) == 0 {
		return nil, nil
	}
	out := map[string]V{}
	for _, item := range list {
		word, num, ok := strings.Cut(item, "=")
		word = strings.TrimSpace(word)
		f, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if !ok || word == "" || err != nil {
			return nil, usageError("--%s %q: want word=number, e.g. --%s cat=0.4", flagName, item, flagName)
		}
		out[word] = conv(f)
	}
	return out, nil
}
