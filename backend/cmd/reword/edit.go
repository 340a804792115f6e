package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"reword/backend/diffusion"
	"reword/shared/align"
	"reword/shared/clip"
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

// editFlags are the Prompt-to-Prompt flags of `edit` and `invert`: the
// targets and their attention controls.
type editFlags struct {
	targets, crossWords, reweights  listFlag
	cross, crossChanged, self, norm *float64
	// blend is the local blend of each target, filled by --blend and
	// --blend-exclude for the --to given before them.
	blend []edit.Blend
	// kinds is the edit kind of each target, filled by --kind for the --to
	// given before it ("" where none was given: auto).
	kinds       []align.Choice
	replaceTail *string
	// selfMax is --self-max-tokens, nil when not given (the model's
	// default).
	selfMax *int
	// blendChanged is --blend-changed, nil when not given (the model's
	// default).
	blendChanged *bool
	// blendReweighted is --blend-reweighted, nil when not given (the
	// model's default).
	blendReweighted    *bool
	keepText, baseline *bool
	decodeNorm         *string
	// fs is the flag set the flags are in, which says which were given.
	fs *flag.FlagSet
}

// controlFlags are the flags that set Prompt-to-Prompt's attention
// controls: --baseline runs none, so it takes none of them.
var controlFlags = []string{"cross", "cross-changed", "cross-word", "self", "self-max-tokens", "reweight", "blend", "blend-exclude",
	"blend-changed", "blend-reweighted", "kind", "replace-tail", "norm", "keep-source-text", "decode-norm"}

// checkSelfMaxTokens checks a --self-max-tokens flag (nil: not given)
// before it goes into a spec, in the flag's own words.
func checkSelfMaxTokens(n *int) error {
	if n != nil && (*n < 1 || *n > edit.MaxSelfMaxTokens) {
		return usageError("--self-max-tokens %d: want a count of query positions from 1 to %d (256: the 16×16 layers and coarser at 512 px)", *n, edit.MaxSelfMaxTokens)
	}
	return nil
}

// optionalInt is an int flag that records whether it was given, so that
// no value has to stand for "the default".
type optionalInt struct{ p **int }

func (o optionalInt) String() string {
	if o.p == nil || *o.p == nil {
		return ""
	}
	return strconv.Itoa(**o.p)
}

func (o optionalInt) Set(v string) error {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return fmt.Errorf("%q is not a whole number", v)
	}
	*o.p = &n
	return nil
}

// optionalBool is a bool flag that records whether it was given:
// --name is true, --name=false false, absent the default.
type optionalBool struct{ p **bool }

func (o optionalBool) IsBoolFlag() bool { return true }

func (o optionalBool) String() string {
	if o.p == nil || *o.p == nil {
		return ""
	}
	return strconv.FormatBool(**o.p)
}

func (o optionalBool) Set(v string) error {
	b, err := strconv.ParseBool(strings.TrimSpace(v))
	if err != nil {
		return fmt.Errorf("%q is not true or false", v)
	}
	*o.p = &b
	return nil
}

// optionalFloat is a float64 flag that records whether it was given, so
// that no value has to stand for "the default".
type optionalFloat struct{ p **float64 }

func (o optionalFloat) String() string {
	if o.p == nil || *o.p == nil {
		return ""
	}
	return strconv.FormatFloat(**o.p, 'g', -1, 64)
}

func (o optionalFloat) Set(v string) error {
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil {
		return fmt.Errorf("%q is not a number", v)
	}
	*o.p = &f
	return nil
}

func addEditFlags(fs *flag.FlagSet) *editFlags {
	f := &editFlags{fs: fs}
	fs.Var(&f.targets, "to", "a target prompt (repeat for up to 4 targets; required)")
	f.cross = fs.Float64("cross", -1, "fraction of the steps whose cross-attention is replaced (default: the model's; 1 on the embedded model, 0.8 for SD families)")
	f.crossChanged = fs.Float64("cross-changed", -1, "cross window of the words a word swap changes, the other tokens keeping --cross (the spec's cross_changed, e.g. --cross 1 --cross-changed 0.4 as the published examples' {\"default_\": 1.0, \"lion\": 0.4}; default: the model's, and for a model without one, --cross)")
	fs.Var(&f.crossWords, "cross-word", "per-word cross window, word=fraction (repeatable)")
	f.self = fs.Float64("self", -1, "fraction of the steps whose self-attention is replaced (default: the model's, 0.4)")
	fs.Var(&f.reweights, "reweight", "scale the attention to a target word, word=factor (repeatable; -2..2 is the useful range)")
	fs.Var(&targetWords{f: f, name: "blend"}, "blend", "local blend of the --to before it: comma-separated words (e.g. --to \"a tiger\" --blend cat,tiger); that target changes only where they are (in the source or in it); a target without --blend is not blended")
	fs.Var(&targetWords{f: f, name: "blend-exclude", exclude: true}, "blend-exclude", "words whose region the --to before it never changes, even inside its --blend words' region (comma-separated)")
	fs.Var(optionalBool{&f.blendChanged}, "blend-changed", "blend every --to without --blend words on the words it changes (the source's swapped or dropped words and its swapped or added ones): it changes only where they are, as Prompt-to-Prompt's local blend given the reworded words; --blend-changed=false blends none on the changed words, --blend still blending its --to (the spec's blend_changed; default: the model's)")
	fs.Var(optionalBool{&f.blendReweighted}, "blend-reweighted", "blend every --to that only reweights words of --prompt (its prompt the same) and has no --blend words on the words it reweights: it changes only where they are; --blend-reweighted=false blends none on them (the spec's blend_reweighted; default: the model's)")
	fs.Var(&targetKind{f: f}, "kind", "edit kind of the --to before it: auto (the default: replace when the target has as many words as the source, refine otherwise), replace (swap words one for one; needs as many words) or refine (align the tokens; what PIE-Bench runs), e.g. --to \"a cat sleeping\" --kind refine")
	f.replaceTail = fs.String("replace-tail", "", "how a replace maps the tokens after its last swapped word: aligned (the default) or reference (the published code's mapper[j, j], to reproduce its numbers)")
	fs.Var(optionalInt{&f.selfMax}, "self-max-tokens", fmt.Sprintf("self-replace in the self-attention layers with at most this many query positions (default: the model's; for a photo on a 64×64-latent model, %d as PnPInversion; 256: the 16×16 layers and coarser at 512 px)", edit.PhotoSelfMaxTokens))
	f.norm = fs.Float64("norm", -1, "fraction of the steps in which each target's GroupNorms centre on the source's means, which keeps more of the background (the spec's norm; 0: never; default: the model's)")
	f.decodeNorm = fs.String("decode-norm", "", "where the targets' VAE-decoder GroupNorms take their statistics: own (each image its own), source (the source image's, so that what an edit left as the source's latent decodes as the source's pixels) or swaps (the source's for word swaps and reweights, their own for targets that add or remove words); the spec's decode_norm (default: the model's)")
	f.keepText = fs.Bool("keep-source-text", false, "give each target the source's text states at the positions of the words it kept, so only the reworded words' states differ (opt-in; the spec's keep_source_text)")
	f.baseline = fs.Bool("baseline", false, "no attention control: each target is its prompt alone from the same start (the images record it as cross, cross_changed, self and norm 0, and blend_changed false on a model that blends by default; takes none of the control flags)")
	return f
}

// apply sets the spec's targets and controls from the flags.
func (f *editFlags) apply(spec *edit.Spec) error {
	if len(f.targets) == 0 {
		return usageError("give at least one --to target prompt")
	}
	spec.Targets = f.targets
	if *f.baseline {
		return f.applyBaseline(spec)
	}
	// -1 is the flags' "not given"; any other value is the spec's, which
	// validation checks, except below 0, which the spec cannot hold.
	for _, w := range []struct {
		name string
		v    float64
	}{{"cross", *f.cross}, {"cross-changed", *f.crossChanged}, {"self", *f.self}, {"norm", *f.norm}} {
		if w.v != -1 && !(w.v >= 0) {
			return usageError("--%s %g: want a fraction of the steps, 0…1 (leave it out for the model's default)", w.name, w.v)
		}
	}
	if *f.cross >= 0 {
		spec.Cross = &edit.Window{End: *f.cross}
	}
	if *f.crossChanged >= 0 {
		spec.CrossChanged = &edit.Window{End: *f.crossChanged}
	}
	if *f.self >= 0 {
		spec.Self = &edit.Window{End: *f.self}
	}
	if *f.norm >= 0 {
		spec.Norm = &edit.Window{End: *f.norm}
	}
	var err error
	if spec.CrossWords, err = wordValues(f.crossWords, "cross-word", func(v float64) edit.Window { return edit.Window{End: v} }); err != nil {
		return err
	}
	if spec.Reweights, err = wordValues(f.reweights, "reweight", func(v float64) float64 { return v }); err != nil {
		return err
	}
	for i, b := range f.blend {
		spec.SetBlend(i, b)
	}
	for i, k := range f.kinds {
		spec.SetKind(i, k)
	}
	if t := *f.replaceTail; t != "" && !slices.Contains(edit.ReplaceTails, t) {
		return usageError("--replace-tail %q: want one of %s", t, strings.Join(edit.ReplaceTails, ", "))
	}
	spec.ReplaceTail = *f.replaceTail
	if err := checkSelfMaxTokens(f.selfMax); err != nil {
		return err
	}
	spec.SelfMaxTokens = f.selfMax
	spec.KeepSourceText = *f.keepText
	spec.BlendChanged = f.blendChanged
	spec.BlendReweighted = f.blendReweighted
	if d := *f.decodeNorm; d != "" && !slices.Contains(edit.DecodeNorms, d) {
		return usageError("--decode-norm %q: want one of %s", d, strings.Join(edit.DecodeNorms, ", "))
	}
	spec.DecodeNorm = *f.decodeNorm
	if err := f.checkCrossChanged(*spec); err != nil {
		return err
	}
	if err := f.checkBlendChanged(*spec); err != nil {
		return err
	}
	return f.checkBlendReweighted(*spec)
}

// checkBlendReweighted refuses --blend-reweighted where no target would
// take it: no --to is a pure reweight without --blend words of its own
// (with a --reweight other than 1 in it), so it would run as if left out.
func (f *editFlags) checkBlendReweighted(spec edit.Spec) error {
	return refuseUntaken(f.blendReweighted, spec, spec.TakesBlendReweighted,
		"--blend-reweighted: no --to only reweights words of --prompt without --blend words of its own, so no target would blend on its reweighted words; leave it out")
}

// refuseUntaken returns the usage error why when a blend flag is on but
// takes finds no target of the spec that would blend by it, and nil
// otherwise; a spec with problems of its own is left to its validation.
func refuseUntaken(on *bool, spec edit.Spec, takes func(*clip.Tokenizer) bool, why string) error {
	if on == nil || !*on || len(spec.CheckFields()) > 0 {
		return nil
	}
	tok, err := clip.Default()
	if err != nil {
		return err
	}
	if !takes(tok) {
		return usageError("%s", why)
	}
	return nil
}

// checkBlendChanged refuses --blend-changed where no target would take
// it: each --to has --blend words of its own or changes no word, so it
// would run as if left out.
func (f *editFlags) checkBlendChanged(spec edit.Spec) error {
	return refuseUntaken(f.blendChanged, spec, spec.TakesBlendChanged,
		"--blend-changed: every --to has --blend words of its own or changes no word of --prompt, so no target would blend on its changed words; leave it out")
}

// checkCrossChanged refuses --cross-changed where no target swaps a word:
// it would run as if left out. A spec with problems of its own is left to
// checkSpec, which names them.
func (f *editFlags) checkCrossChanged(spec edit.Spec) error {
	if *f.crossChanged < 0 || len(spec.CheckFields()) > 0 {
		return nil
	}
	tok, err := clip.Default()
	if err != nil {
		return err
	}
	if !spec.SwapsWords(tok) {
		return usageError("--cross-changed %g: no --to target swaps a word for another (a word swap: as many words as --prompt, one or more of them changed, and not --kind refine), so no token would take it; leave it out, or use --cross or --cross-word", *f.crossChanged)
	}
	return nil
}

// applyBaseline sets the spec of a --baseline run: Prompt-to-Prompt with
// every window empty, which leaves attention untouched as the engine's
// baseline does (the same pixels), so that the spec the images carry
// reproduces them. A control flag would be ignored, so it is refused.
func (f *editFlags) applyBaseline(spec *edit.Spec) error {
	for _, name := range controlFlags {
		if flagSet(f.fs, name) {
			return usageError("--%s and --baseline: --baseline runs no attention control, so --%s would be ignored; leave out one of them", name, name)
		}
	}
	spec.Cross, spec.CrossChanged, spec.Self, spec.Norm = &edit.Window{}, &edit.Window{}, &edit.Window{}, &edit.Window{}
	return nil
}

// forModel completes the spec for the model it runs on, once loaded: a
// --baseline run on a model that blends on the changed words, or decodes
// with the source's statistics, by default states blend_changed false, or
// decode_norm own, since it does neither, so that its images record what
// ran; on other models the spec leaves them out, as specs did before the
// fields.
func (f *editFlags) forModel(d edit.Defaults, spec *edit.Spec) {
	spec.Model = d.Model
	if *f.baseline && d.BlendChanged {
		off := false
		spec.BlendChanged = &off
	}
	if *f.baseline && d.BlendReweighted {
		off := false
		spec.BlendReweighted = &off
	}
	if *f.baseline && d.DecodeNorm != "" && d.DecodeNorm != edit.DecodeNormOwn {
		spec.DecodeNorm = edit.DecodeNormOwn
	}
}

// targetKind is --kind: the edit kind of the target of the --to given
// before it, checked here so that a typo is a usage error naming the
// flag. Whether the prompts allow the kind is the spec's check.
type targetKind struct{ f *editFlags }

func (k *targetKind) String() string { return "" }

func (k *targetKind) Set(v string) error {
	i := len(k.f.targets) - 1
	if i < 0 {
		return fmt.Errorf("an edit kind belongs to one target: put --kind after that target's --to, e.g. --to \"a cat sleeping\" --kind refine")
	}
	c := align.Choice(strings.TrimSpace(v))
	if !slices.Contains(align.Choices, c) {
		names := make([]string, len(align.Choices))
		for j, n := range align.Choices {
			names[j] = string(n)
		}
		return fmt.Errorf("%q is no edit kind: want one of %s", v, strings.Join(names, ", "))
	}
	for len(k.f.kinds) <= i {
		k.f.kinds = append(k.f.kinds, "")
	}
	if k.f.kinds[i] != "" {
		return fmt.Errorf("--to %q has two kinds (%s and %s): give one --kind per target", k.f.targets[i], k.f.kinds[i], c)
	}
	k.f.kinds[i] = c
	return nil
}

// targetWords is --blend or --blend-exclude: words for the target of the
// --to given before it (flag.FlagSet sets flags in command-line order).
type targetWords struct {
	f       *editFlags
	name    string
	exclude bool
}

func (w *targetWords) String() string { return "" }

func (w *targetWords) Set(v string) error {
	i := len(w.f.targets) - 1
	if i < 0 {
		return fmt.Errorf("a local blend belongs to one target: put --%s after that target's --to, e.g. --to \"a tiger\" --%s cat,tiger", w.name, w.name)
	}
	var words []string
	for _, word := range strings.Split(v, ",") {
		if word = strings.TrimSpace(word); word != "" {
			words = append(words, word)
		}
	}
	if len(words) == 0 {
		return fmt.Errorf("no words: give comma-separated words, e.g. --%s cat,tiger", w.name)
	}
	for len(w.f.blend) <= i {
		w.f.blend = append(w.f.blend, edit.Blend{})
	}
	if w.exclude {
		w.f.blend[i].Exclude = append(w.f.blend[i].Exclude, words...)
	} else {
		w.f.blend[i].Words = append(w.f.blend[i].Words, words...)
	}
	return nil
}

func runEdit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("edit", "", stderr)
	ef := addEngineFlags(fs)
	sf := addSamplingFlags(fs)
	prompt := fs.String("prompt", "", "the source prompt (required)")
	edf := addEditFlags(fs)
	out := fs.String("out", "", "folder to write source.png, target-1.png, … into, created if needed (required; one holding an earlier run's images is refused)")
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
		return usageError("--seed is required (pick any number; the same seed gives the same source image)")
	}
	if err := sf.check(); err != nil {
		return err
	}
	spec := edit.Spec{Source: *prompt, Negative: *sf.negative, Seed: sf.seed,
		Guidance: sf.guidance, Scheduler: *sf.scheduler}
	if *sf.steps != 0 {
		spec.Steps = sf.steps
	}
	if err := edf.apply(&spec); err != nil {
		return err
	}
	if err := checkSpec(spec); err != nil {
		return err
	}
	if err := checkNewFolder(*out); err != nil {
		return err
	}

	e, err := ef.load()
	if err != nil {
		return err
	}
	defer e.Close()
	edf.forModel(e.Defaults(), &spec)
	bar := newProgress(stderr, "edit")
	res, err := e.Edit(ctx, spec, diffusion.RunOptions{Baseline: *edf.baseline}, bar.update)
	bar.done()
	if err != nil {
		return err
	}
	ran, err := specAsRun(e, spec)
	if err != nil {
		return err
	}
	paths, err := writeEditImages(*out, "source.png", res, ran)
	if err != nil {
		return err
	}
	return report(stdout, *ef.json, ran, res, paths)
}

// specAsRun is the spec as e ran it, every default filled in (as the
// server echoes it), so that the PNGs and the report say what ran under
// any later defaults.
func specAsRun(e *diffusion.Engine, spec edit.Spec) (edit.Spec, error) {
	r, err := spec.Resolve(e.Defaults())
	if err != nil {
		return edit.Spec{}, err
	}
	return r.Spec(), nil
}

// writeEditImages writes row 0 as sourceName and each target as
// target-<n>.png into dir (checked by checkNewFolder), with the spec
// embedded, and returns the paths.
func writeEditImages(dir, sourceName string, res *diffusion.Result, spec edit.Spec) ([]string, error) {
	var paths []string
	for _, im := range res.Images {
		name := sourceName
		if im.Row > 0 {
			name = targetFile(im.Row)
		}
		p := filepath.Join(dir, name)
		if err := writeImage(p, im, spec); err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	return paths, nil
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
