package main

import (
	"bytes"
	"cmp"
	"context"
	"flag"
	"fmt"
	"image/png"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"reword/backend/diffusion"
	"reword/models/tiny/scene"
	"reword/shared/align"
	"reword/shared/edit"
)

func init() {
	registerBench(benchmark{name: "edit", summary: "Prompt-to-Prompt vs baseline on hundreds of edits of the tiny model", run: runBenchEdit})
}

// benchEditFlags are bench edit's settings. The default run makes 210
// colour swaps (70 prompt pairs × 3 seeds), since a rate over fewer moves by
// more than the differences it is read for; it takes about 25 minutes on 2
// cores. -quick is a smoke run of about 2 minutes.
type benchEditFlags struct {
	fs                                     *flag.FlagSet
	engine                                 engineFlags
	colour, shape, phrase, reweight, seeds *int
	split                                  *string
	steps                                  *int
	cross, self, norm                      *float64
	selfMax                                *int // nil: the model's
	keepText                               *bool
	decodeNorm                             *string
	blendChanged, blendReweighted          *bool
	blendObject                            *bool
	crossChanged                           *float64
	block                                  *int
	quick                                  *bool
	refineSwaps                            *bool
	drawn                                  *bool
	images                                 *string
}

func addBenchEditFlags(fs *flag.FlagSet) *benchEditFlags {
	f := &benchEditFlags{
		fs:       fs,
		engine:   addEngineFlags(fs),
		colour:   fs.Int("colour", 70, "colour-swap prompt pairs (each run at every seed)"),
		shape:    fs.Int("shape", 25, "shape-swap prompt pairs"),
		phrase:   fs.Int("phrase", 15, "added-phrase (named background) prompt pairs"),
		reweight: fs.Int("reweight", 10, "prompts reweighted ×2, and as many reweighted ×−1 (their colour word)"),
		seeds:    fs.Int("seeds", 3, "seeds per prompt pair (each edit's own, drawn with its prompts)"),
		split:    fs.String("split", "report", "which half of the set: report, tune or all (the two halves never share an edit)"),
		block:    fs.Int("block", 0, "which block of the split's prompt pairs (report or tune): block k edits pairs k·n+1 to (k+1)·n of each kind (n its count), a set of the same shape that no other block of the split shares (a question asked again on edits no run has seen)"),
		steps:    fs.Int("steps", 0, "diffusion steps (0 = the model's default)"),
		cross:    fs.Float64("cross", -1, "cross-replace window for every P2P edit, 0…1 (default: the model's)"),
		self:     fs.Float64("self", -1, "self-replace window for every P2P edit, 0…1 (default: the model's)"),
		norm:     fs.Float64("norm", -1, "the part of the steps, from the first, in which every P2P edit's GroupNorms centre on the source's means, 0…1 (the spec's norm; 0: none; default: the model's; the baseline has no control to share them with)"),
		quick:    fs.Bool("quick", false, "a smoke run of about 2 minutes: 5 colour, 2 shape, 2 phrase and 1+1 reweight pairs at 2 seeds (flags given explicitly win)"),
		refineSwaps: fs.Bool("refine-swaps", false, "also run every word swap (colour, shape) with edit kind refine, as PIE-Bench and PnPInversion run every edit: "+
			"a third method, "+methodP2PRefine+" (added phrases are refinements already, reweights leave it out)"),
	}
	f.drawn = fs.Bool("drawn", false, "also score every word swap (colour, shape) drawn exactly: its source scene and the same scene with the word swapped "+
		"(same placement, background and texture), both through the model's VAE — what a perfect edit scores through this decoder and evaluator, a fourth method, "+methodDrawn+
		"; and a fifth, "+methodSpliced+": the drawn source's latent with the swapped scene's on the latent cells either scene's object touches, decoded — what a perfect local blend keeps through this decoder")
	fs.Var(optionalInt{&f.selfMax}, "self-max-tokens", "self-replace in the self-attention layers with at most this many query positions, for every P2P edit (default: the model's)")
	fs.Var(optionalBool{&f.blendChanged}, "blend-changed", "every P2P edit that changes words blends locally on them (the source's changed words and the target's: Prompt-to-Prompt's local blend on the reworded words; the spec's blend_changed); -blend-changed=false blends none; default: the model's; the baseline is not blended")
	fs.Var(optionalBool{&f.blendReweighted}, "blend-reweighted", "every P2P reweight blends locally on the word it reweights (the spec's blend_reweighted); -blend-reweighted=false blends none; default: the model's")
	f.crossChanged = fs.Float64("cross-changed", -1, "cross-replace window of the words each word swap changes, for every P2P edit, the other tokens taking -cross's "+
		"(the spec's cross_changed: the reference's {\"default_\": cross, word: W}); default: the model's")
	f.images = fs.String("images", "", "write every source and edited image to this folder (created; must hold no index.tsv), "+
		"with index.tsv: each edit's prompts, seed, method and scores, for checking the verdicts by eye")
	f.blendObject = fs.Bool("blend-object", false, "every P2P colour and shape swap blends locally on its object's shape word (the source's and the target's, e.g. \"circle\" for a colour swap of a circle): the object's region rather than its colour word's; added phrases and reweights are not blended; not with -blend-changed")
	f.decodeNorm = fs.String("decode-norm", "", "every P2P edit's targets decode with own (each image its own VAE-decoder GroupNorm statistics), source (the source image's) or swaps (the source's for word swaps and reweights) statistics (the spec's decode_norm; default: the model's; the baseline decodes its own)")
	f.keepText = fs.Bool("keep-source-text", false, "every P2P edit keeps the source's text states for the words it did not change (the spec's keep_source_text; the baseline has no control to keep them with)")
	return f
}

// quickCounts are -quick's values for the flags not given explicitly.
var quickCounts = map[string]int{"colour": 5, "shape": 2, "phrase": 2, "reweight": 1, "seeds": 2}

// maxPairs bounds each kind's prompt pairs: with -block's 1000, every
// edit's random stream index (2·pair+1) stays below the 2³² that
// newEdit leaves it beside its kind's.
const maxPairs = 100_000

// counts applies -quick and checks the values.
func (f *benchEditFlags) counts() (editCounts, error) {
	if *f.quick {
		target := map[string]*int{"colour": f.colour, "shape": f.shape, "phrase": f.phrase, "reweight": f.reweight, "seeds": f.seeds}
		for name, v := range quickCounts {
			if !flagSet(f.fs, name) {
				*target[name] = v
			}
		}
	}
	for name, v := range map[string]int{"colour": *f.colour, "shape": *f.shape, "phrase": *f.phrase, "reweight": *f.reweight} {
		if v < 0 || v > maxPairs {
			return nil, usageError("--%s is %d: want 0 to %d prompt pairs", name, v, maxPairs)
		}
	}
	if *f.seeds < 1 || *f.seeds > 100 {
		return nil, usageError("--seeds is %d: want 1 to 100", *f.seeds)
	}
	c := editCounts{kindColour: *f.colour, kindShape: *f.shape, kindRefine: *f.phrase, kindBoost: *f.reweight, kindSuppress: *f.reweight}
	if c[kindColour]+c[kindShape]+c[kindRefine]+c[kindBoost] == 0 {
		return nil, usageError("every count is 0: nothing to edit")
	}
	if s := *f.split; s != "report" && s != "tune" && s != "all" {
		return nil, usageError("--split is %q: want report, tune or all", s)
	}
	if *f.steps < 0 {
		return nil, usageError("--steps is %d: want 0 (the model's default) or more", *f.steps)
	}
	if *f.block < 0 || *f.block > 1000 {
		return nil, usageError("--block is %d: want 0 (the first pairs, the default) to 1000", *f.block)
	}
	if d := *f.decodeNorm; d != "" && !slices.Contains(edit.DecodeNorms, d) {
		return nil, usageError("--decode-norm %q: want one of %s", d, strings.Join(edit.DecodeNorms, ", "))
	}
	if *f.blendObject && f.blendChanged != nil && *f.blendChanged {
		return nil, usageError("--blend-object and --blend-changed: each blends every swap on other words; give one of them")
	}
	if *f.blendObject && f.blendReweighted != nil && *f.blendReweighted {
		return nil, usageError("--blend-object and --blend-reweighted: --blend-object leaves the reweights unblended; give one of them")
	}
	if *f.blendObject {
		// -blend-object leaves the added phrases and reweights unblended,
		// whatever the model's blend defaults.
		off := false
		if f.blendChanged == nil {
			f.blendChanged = &off
		}
		f.blendReweighted = &off
	}
	if *f.block > 0 && *f.split == "all" {
		// "all" numbers both halves together, so its later blocks are
		// earlier blocks of report and tune.
		return nil, usageError("--block %d with --split all: blocks are of one half; use --split report or tune", *f.block)
	}
	for name, v := range map[string]float64{"cross": *f.cross, "self": *f.self, "cross-changed": *f.crossChanged} {
		if v != -1 && !(v >= 0 && v <= 1) {
			return nil, usageError("--%s is %g: want a fraction of the steps, 0…1", name, v)
		}
	}
	if v := *f.norm; v != -1 && !(v >= 0 && v <= 1) {
		return nil, usageError("--norm is %g: want a fraction of the steps, 0…1 (0: none; leave it out for the model's default)", v)
	}
	if err := checkSelfMaxTokens(f.selfMax); err != nil {
		return nil, err
	}
	return c, nil
}

func runBenchEdit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench edit", "", stderr)
	f := addBenchEditFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError("unexpected arguments %q", fs.Args())
	}
	counts, err := f.counts()
	if err != nil {
		return err
	}
	set, err := editSet(counts, *f.split, *f.seeds, *f.block)
	if err != nil {
		return err
	}
	e, err := f.engine.load()
	if err != nil {
		return err
	}
	defer e.Close()
	if err := needSceneImages(e); err != nil {
		return err
	}
	// The folder is made once the run can start, so that a refused run
	// leaves no index.tsv behind to refuse the next.
	var images *imageFolder
	if *f.images != "" {
		if images, err = newImageFolder(*f.images, editImageColumns...); err != nil {
			return err
		}
		defer images.close()
	}

	total := 0
	for _, be := range set {
		total += len(be.seeds)
	}
	methods := []string{methodP2P}
	if *f.refineSwaps {
		methods = append(methods, methodP2PRefine)
	}
	methods = append(methods, methodBaseline)
	if *f.drawn {
		methods = append(methods, methodDrawn, methodSpliced)
	}
	var records []editRecord
	start := time.Now()
	done := 0
	for i := range set {
		be := &set[i]
		for k, seed := range be.seeds {
			scores, err := runBenchPair(ctx, e, be, seed, f, images.editWriter(i, k))
			if err != nil {
				return err
			}
			// The generated methods start from the same source image, so
			// the P2P run's source decides their row; a drawn edit has a
			// source of its own.
			rowOf := func(source editScore) string {
				if mustChangeBackground(*be, source.srcBackground) {
					return rowMustChange
				}
				return be.kind
			}
			for _, m := range methods {
				sc, ok := scores[m]
				if !ok {
					continue
				}
				row := rowOf(scores[methodP2P])
				if drawnMethod(m) {
					row = rowOf(sc)
				}
				records = append(records, editRecord{edit: be, row: row, method: m, seedIndex: k, seed: seed, score: sc})
			}
			done++
			if done%10 == 0 || done == total {
				el := time.Since(start)
				left := time.Duration(float64(el) / float64(done) * float64(total-done))
				fmt.Fprintf(stderr, "%d/%d edits, %v, about %v left\n", done, total, el.Round(time.Second), left.Round(time.Second))
			}
		}
	}

	d := e.Defaults()
	run := editRun{model: d.Model, split: *f.split, block: *f.block, steps: d.Steps, guidance: d.Guidance, cross: d.Cross.End, self: d.Self.End,
		selfMax: d.SelfMaxTokens, norm: d.Norm.End, keepText: *f.keepText, decodeNorm: cmp.Or(*f.decodeNorm, d.DecodeNorm), blendChanged: d.BlendChanged, seeds: *f.seeds, pairs: len(set), seconds: time.Since(start).Seconds(), methods: methods}
	if *f.steps > 0 {
		run.steps = *f.steps
	}
	if *f.cross >= 0 {
		run.cross = *f.cross
	}
	if f.blendChanged != nil {
		run.blendChanged = *f.blendChanged
	}
	run.blendReweighted = d.BlendReweighted
	if f.blendReweighted != nil {
		run.blendReweighted = *f.blendReweighted
	}
	run.blendObject = *f.blendObject
	flags := edit.Spec{Cross: &edit.Window{End: run.cross}}
	if *f.crossChanged >= 0 {
		flags.CrossChanged = &edit.Window{End: *f.crossChanged}
	}
	run.crossChanged = d.SwappedWordsCross(flags).End
	if *f.self >= 0 {
		run.self = *f.self
	}
	if f.selfMax != nil {
		run.selfMax = *f.selfMax
	}
	if *f.norm >= 0 {
		run.norm = *f.norm
	}
	if err := images.close(); err != nil {
		return err
	}
	if *f.engine.json {
		return writeEditJSON(stdout, run, records)
	}
	return printEditReport(stdout, run, records)
}

// runBenchPair runs one edit at one seed with Prompt-to-Prompt, with the
// baseline and, with -refine-swaps, with Prompt-to-Prompt as a refinement,
// and scores each by method; w, when not nil, writes each image.
func runBenchPair(ctx context.Context, e *diffusion.Engine, be *benchEdit, seed uint64, f *benchEditFlags, w *editWriter) (map[string]editScore, error) {
	spec := edit.Spec{Source: be.source, Targets: []string{be.target}, Seed: &seed}
	if *f.steps > 0 {
		spec.Steps = f.steps
	}
	if *f.cross >= 0 {
		spec.Cross = &edit.Window{End: *f.cross}
	}
	if *f.self >= 0 {
		spec.Self = &edit.Window{End: *f.self}
	}
	spec.SelfMaxTokens = f.selfMax
	if *f.norm >= 0 {
		spec.Norm = &edit.Window{End: *f.norm}
	}
	spec.KeepSourceText = *f.keepText
	spec.DecodeNorm = *f.decodeNorm
	if *f.crossChanged >= 0 {
		spec.CrossChanged = &edit.Window{End: *f.crossChanged}
	}
	spec.BlendChanged, spec.BlendReweighted = f.blendChanged, f.blendReweighted
	if *f.blendObject && be.drawn != nil {
		// The blend words replace the changed words for this target
		// whatever the model's blend_changed default.
		words := []string{be.drawn[0].Mentions[0].Shape.String()}
		if w := be.drawn[1].Mentions[0].Shape.String(); w != words[0] {
			words = append(words, w)
		}
		spec.Blend = []edit.Blend{{Words: words}}
	}
	if be.reweight() {
		spec.Reweights = map[string]float64{be.word: be.factor}
	}
	scores := map[string]editScore{}
	// run edits with opts and scores the target against the source.
	run := func(method string, s edit.Spec, opts diffusion.RunOptions) (diffusion.Image, error) {
		res, err := e.Edit(ctx, s, opts, nil)
		if err == nil {
			scores[method], err = score(*be, res.Images[0], res.Images[1])
		}
		if err == nil {
			err = w.add(be, seed, method, res.Images[0], &res.Images[1], scores[method])
		}
		if err != nil {
			return diffusion.Image{}, fmt.Errorf("%s edit %q → %q, seed %d: %w", method, be.source, be.target, seed, err)
		}
		return res.Images[0], nil
	}
	src, err := run(methodP2P, spec, diffusion.RunOptions{})
	if err != nil {
		return nil, err
	}
	if *f.refineSwaps {
		switch be.kind {
		case kindColour, kindShape:
			refine := spec.Clone()
			refine.Kinds = []align.Choice{align.ForceRefine}
			if _, err := run(methodP2PRefine, refine, diffusion.RunOptions{}); err != nil {
				return nil, err
			}
		case kindRefine:
			// An added phrase changes the word count, so auto already
			// refines: the same edit, not run twice.
			scores[methodP2PRefine] = scores[methodP2P]
		}
	}
	if *f.drawn && be.drawn != nil {
		src, res, spliced, err := drawnSwap(ctx, e, be, seed)
		if err == nil {
			scores[methodDrawn], err = score(*be, src, res)
		}
		if err == nil {
			err = w.add(be, seed, methodDrawn, src, &res, scores[methodDrawn])
		}
		if err == nil {
			scores[methodSpliced], err = score(*be, src, spliced)
		}
		if err == nil {
			err = w.add(be, seed, methodSpliced, src, &spliced, scores[methodSpliced])
		}
		if err != nil {
			return nil, fmt.Errorf("drawn edit %q → %q, seed %d: %w", be.source, be.target, seed, err)
		}
	}
	if be.reweight() {
		// The baseline of a reweight is its target prompt alone, which is
		// the source prompt: the source image, so it is not run again.
		if scores[methodBaseline], err = score(*be, src, src); err != nil {
			return nil, err
		}
		return scores, w.add(be, seed, methodBaseline, src, nil, scores[methodBaseline])
	}
	if _, err := run(methodBaseline, spec, diffusion.RunOptions{Baseline: true}); err != nil {
		return nil, err
	}
	return scores, nil
}

// drawnSwap draws word swap be exactly, at seed: the source caption's
// scene (placement, background and texture drawn from seed) and the same
// scene with the object the swap names, both passed through the engine's
// VAE as photos, as a generated image passes through its decoder. Scored
// like an edit, the pair is what a perfect edit scores through this
// decoder and evaluator, each image decoded with its own statistics: the
// ceiling of the model's own edits (but for backgrounds next to the
// object, which an edit decoded with the source's statistics keeps). spliced is
// the source's latent with the swapped scene's on the latent cells either
// scene's object touches: what a perfect local blend scores through this
// decoder, where a decoder whose every pixel depends on the whole latent
// (a GroupNorm's statistics span the image) changes the background too.
func drawnSwap(ctx context.Context, e *diffusion.Engine, be *benchEdit, seed uint64) (src, res, spliced diffusion.Image, err error) {
	captions := be.drawn
	s, err := scene.SceneFor(rand.New(rand.NewPCG(seed, drawnStream)), captions[0])
	if err != nil {
		return src, res, spliced, err
	}
	t := s
	t.Objects = slices.Clone(s.Objects)
	// Only the swapped word changes: the object keeps its centre, radius
	// and rotation.
	t.Objects[0].Object = captions[1].Mentions[0].Object
	sp, err := scenePhoto(s)
	if err != nil {
		return src, res, spliced, err
	}
	tp, err := scenePhoto(t)
	if err != nil {
		return src, res, spliced, err
	}
	if src, err = e.RoundTrip(ctx, sp); err != nil {
		return src, res, spliced, err
	}
	if res, err = e.RoundTrip(ctx, tp); err != nil {
		return src, res, spliced, err
	}
	m := e.Manifest()
	cells, err := objectCells(m.Latent.Width, m.Latent.Height, s.ObjectMasks()[0], t.ObjectMasks()[0])
	if err != nil {
		return src, res, spliced, err
	}
	spliced, err = e.Splice(ctx, sp, tp, cells)
	return src, res, spliced, err
}

// objectCells marks the cells of a w×h latent grid that any pixel of the
// masks (scene.ImageSize² each) falls in.
func objectCells(w, h int, masks ...[]bool) ([]bool, error) {
	if scene.ImageSize%w != 0 || scene.ImageSize%h != 0 {
		return nil, fmt.Errorf("a %d×%d latent does not tile the %d-pixel drawn scenes", w, h, scene.ImageSize)
	}
	fx, fy := scene.ImageSize/w, scene.ImageSize/h
	cells := make([]bool, w*h)
	for _, mask := range masks {
		for p, on := range mask {
			if on {
				cells[(p/scene.ImageSize/fy)*w+(p%scene.ImageSize)/fx] = true
			}
		}
	}
	return cells, nil
}

// drawnStream keeps the drawn scenes' random stream apart from the others a
// seed feeds.
const drawnStream = 0x64726177

// scenePhoto is drawn scene s as a photo.
func scenePhoto(s scene.Scene) (diffusion.Photo, error) {
	var b bytes.Buffer
	if err := png.Encode(&b, s.Render()); err != nil {
		return diffusion.Photo{}, err
	}
	return diffusion.Photo{Data: b.Bytes()}, nil
}

// roundTrip passes drawn scene s through the engine's VAE as a photo.
func roundTrip(ctx context.Context, e *diffusion.Engine, s scene.Scene) (diffusion.Image, error) {
	p, err := scenePhoto(s)
	if err != nil {
		return diffusion.Image{}, err
	}
	return e.RoundTrip(ctx, p)
}
