package edit

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"reword/shared/align"
	"reword/shared/clip"
)

// Problem is one invalid field of a spec.
type Problem struct {
	// Field is the path of the field, e.g. "targets[1]" or `reweights["cat"]`.
	Field string
	// Message says what is wrong and what is allowed, as a predicate of
	// the field: "must be 1–150 (it is 1000)".
	Message string
}

// Problems is what Validate found wrong; it is the error it returns. It
// lists at most MaxProblems, and when there were more its last entry says
// how many more: a reply that lists them stays small whatever the client
// sent, and the rest show once these are fixed.
type Problems []Problem

// MaxProblems bounds the problems Validate lists.
const MaxProblems = 20

// capped is p listed as Problems promises: at most MaxProblems, the last
// saying how many more were found.
func (p Problems) capped() Problems {
	if len(p) <= MaxProblems {
		return p
	}
	last := p[MaxProblems-1]
	last.Message += fmt.Sprintf("; %d more problems were found and are not listed", len(p)-MaxProblems)
	return append(p[:MaxProblems-1:MaxProblems-1], last)
}

func (p Problems) Error() string {
	var b strings.Builder
	b.WriteString("invalid edit spec: ")
	for i, pr := range p {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(pr.Field)
		b.WriteString(" ")
		b.WriteString(pr.Message)
	}
	return b.String()
}

// Resolved is a valid spec with every omitted field filled in from the
// model's defaults: what the engine runs.
type Resolved struct {
	Source    string
	Targets   []string
	Negative  string
	Seed      uint64
	Steps     int
	Guidance  float64
	Width     int
	Height    int
	Scheduler string
	Model     string
	Cross     Window
	// CrossChanged is the cross window of the words a word swap changes;
	// nil when neither the spec nor the model sets one, and every token
	// takes Cross. Kept nil rather than filled in, so that the resolved
	// spec of such an edit (on a model without the default) states no
	// window it did not choose, and its link reads as before the field.
	CrossChanged *Window
	CrossWords   map[string]Window
	Self         Window
	// SelfMaxTokens is the spec's self-replace limit, 0 when it sets none:
	// the default depends on the model and on whether a photo is edited,
	// which the engine knows (backend/diffusion).
	SelfMaxTokens int
	Reweights     map[string]float64
	Blend         []Blend // one entry per target; empty: not blended
	// BlendChanged is the spec's blend_changed, else true where the model
	// blends on the changed words by default; nil when neither sets it,
	// so that the resolved spec of such an edit states no setting it did
	// not choose, and its link reads as before the field.
	BlendChanged *bool
	// BlendReweighted is, as BlendChanged, the spec's blend_reweighted,
	// else true where the model blends its reweights by default; nil when
	// neither sets it.
	BlendReweighted *bool
	// Kinds is the kind chosen per target, canonical as in Spec (trailing
	// auto entries left out).
	Kinds []align.Choice
	// ReplaceTail is ReplaceTailAligned or ReplaceTailReference.
	ReplaceTail string
	// DecodeNorm is the spec's decode_norm, else the model's default;
	// "" when neither sets it (each image its own statistics, as
	// DecodeNormOwn), so that the resolved spec of such an edit states no
	// setting it did not choose, and its link reads as before the field.
	DecodeNorm string
	// KeepSourceText is the spec's keep_source_text.
	KeepSourceText bool
	// Norm is the spec's norm window, else the model's; empty: never.
	Norm      Window
	Image     string
	Inversion string // "" without Image
}

// Resolve validates s against the model's defaults and fills in every
// omitted field. The error is Problems when the spec is invalid (see
// Validate).
func (s Spec) Resolve(d Defaults) (Resolved, error) {
	if d.Model == "" || len(d.Sizes) == 0 || len(d.Schedulers) == 0 || d.Steps < MinSteps || d.Steps > MaxSteps {
		return Resolved{}, fmt.Errorf("edit: model defaults %+v are incomplete: they need a model id, sizes, schedulers and steps in %d..%d", d, MinSteps, MaxSteps)
	}
	// Every path meets here: ParseSpec normalises what it decodes, but a
	// spec decoded as part of another message (the socket's run) or built
	// in code is not, and trailing auto kinds or empty blend entries must
	// mean the same wherever a spec comes from.
	s.normalize()
	p, err := s.check(&d)
	if err != nil {
		return Resolved{}, err
	}
	if len(p) > 0 {
		return Resolved{}, p
	}
	r := s.withDefaults(d)
	if err := checkLinkSize(r); err != nil {
		return Resolved{}, err
	}
	return r, nil
}

// checkLinkSize reports a resolved spec whose edit link would be too big,
// as a problem of its longest prompt: the prompts' length is what makes a
// valid spec that big, since every word setting names words of the
// prompts. The server links every result it makes (from Resolved.Spec),
// so without this check such a spec would run the whole model and fail at
// the end.
func checkLinkSize(r Resolved) error {
	_, err := EncodeLink(r.Spec())
	var tooBig *linkSizeError
	if !errors.As(err, &tooBig) {
		return err
	}
	field, longest := "source", len(r.Source)
	for i, t := range r.Targets {
		if len(t) > longest {
			field, longest = fmt.Sprintf("targets[%d]", i), len(t)
		}
	}
	if len(r.Negative) > longest {
		field = "negative"
	}
	return Problems{{Field: field, Message: "is too long for an edit link with the rest of the edit: " + tooBig.Error()}}
}

// withDefaults is s, valid, with every omitted field filled in from d.
func (s Spec) withDefaults(d Defaults) Resolved {
	r := Resolved{
		Source: s.Source, Targets: slices.Clone(s.Targets), Negative: s.Negative,
		Seed: *s.Seed, Steps: d.Steps, Guidance: d.Guidance,
		Width: d.Sizes[0].Width, Height: d.Sizes[0].Height,
		Scheduler: d.Schedulers[0], Model: d.Model, Cross: d.Cross, Self: d.Self,
		CrossWords: cloneMap(s.CrossWords), Reweights: cloneMap(s.Reweights), Blend: cloneBlends(s.Blend),
		Image: s.Image, Inversion: s.Inversion,
		Kinds: slices.Clone(s.Kinds), ReplaceTail: ReplaceTailAligned, KeepSourceText: s.KeepSourceText,
	}
	if s.ReplaceTail != "" {
		r.ReplaceTail = s.ReplaceTail
	}
	r.DecodeNorm = s.DecodeNorm
	if r.DecodeNorm == "" {
		r.DecodeNorm = d.DecodeNorm
	}
	if s.Steps != nil {
		r.Steps = *s.Steps
	}
	if s.Guidance != nil {
		r.Guidance = *s.Guidance
	}
	if s.Width != nil {
		r.Width = *s.Width
	}
	if s.Height != nil {
		r.Height = *s.Height
	}
	if s.Scheduler != "" {
		r.Scheduler = s.Scheduler
	}
	if s.Cross != nil {
		r.Cross = *s.Cross
	}
	switch {
	case s.CrossChanged != nil:
		r.CrossChanged = clonePtr(s.CrossChanged)
	case d.CrossChanged != nil:
		r.CrossChanged = clonePtr(d.CrossChanged)
	}
	r.BlendChanged = resolvedSwitch(s.BlendChanged, d.BlendChanged)
	r.BlendReweighted = resolvedSwitch(s.BlendReweighted, d.BlendReweighted)
	if s.Self != nil {
		r.Self = *s.Self
	}
	if s.SelfMaxTokens != nil {
		r.SelfMaxTokens = *s.SelfMaxTokens
	}
	switch {
	case s.Norm == nil:
		if d.Norm.End > d.Norm.Start {
			r.Norm = d.Norm
		}
	case s.Norm.End > s.Norm.Start:
		r.Norm = *s.Norm
	}
	if s.Image != "" && s.Inversion == "" {
		r.Inversion = Inversions[0]
	}
	return r
}

func cloneMap[V any](m map[string]V) map[string]V {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Validate checks s against the model's defaults and returns nil or Problems
// listing the invalid fields with the allowed values. Words named in
// cross_words, reweights and blend must occur in the prompts (matched on CLIP
// tokens, see align.WordTokens) within the 77-token context, and the
// resolved spec must fit in an edit link (see EncodeLink), which is checked
// once every other field is valid.
//
// Each message is a predicate of its field ("must be 1–150 (it is 1000)"),
// so that a client can put it after the field's name in its own words
// ("Steps must be 1–150 (it is 1000)") and Problems.Error reads as a
// sentence too.
func (s Spec) Validate(d Defaults) error {
	_, err := s.Resolve(d)
	return err
}

// CheckFields returns the problems Validate reports that do not depend on
// the model (everything but the size, the sampler, the model id and the
// link's size, which depends on the defaults filled in), in the same
// words: what an editor can check while it does not know the model yet.
// It is empty when the tokenizer cannot load (Validate then says so).
func (s Spec) CheckFields() Problems {
	s.normalize() // as Resolve does
	p, _ := s.check(nil)
	return p
}

// check collects the problems of s, capped as Problems promises; d nil
// leaves out the model's checks. The work is bounded by the limits, not by
// what a client sent: the entries past a limit (targets past MaxTargets,
// kinds and blend entries past the targets, words past MaxWordEntries)
// are counted in the limit's own problem and not checked one by one.
func (s Spec) check(d *Defaults) (Problems, error) {
	var p Problems
	add := func(field, format string, a ...any) {
		p = append(p, Problem{Field: field, Message: fmt.Sprintf(format, a...)})
	}

	checkPrompt := func(field, text string, required bool) {
		switch {
		case required && strings.TrimSpace(text) == "":
			add(field, "is empty: write a prompt")
		case len(text) > MaxPromptBytes:
			add(field, "is too long: %d bytes, the limit is %d", len(text), MaxPromptBytes)
		case !utf8.ValidString(text):
			add(field, "is not valid UTF-8 text")
		}
	}
	checkPrompt("source", s.Source, true)
	if len(s.Targets) == 0 || len(s.Targets) > MaxTargets {
		add("targets", "must be 1 to %d prompts (there are %d)", MaxTargets, len(s.Targets))
	}
	for i, t := range s.Targets[:min(len(s.Targets), MaxTargets)] {
		checkPrompt(fmt.Sprintf("targets[%d]", i), t, true)
	}
	checkPrompt("negative", s.Negative, false)

	if s.Seed == nil {
		add("seed", "is missing: give a whole number from 0 to %d", uint64(math.MaxUint64))
	}
	if s.Steps != nil && (*s.Steps < MinSteps || *s.Steps > MaxSteps) {
		add("steps", "must be %d–%d (it is %d)", MinSteps, MaxSteps, *s.Steps)
	}
	if g := s.Guidance; g != nil && !(*g >= MinGuidance && *g <= MaxGuidance) {
		add("guidance", "must be %v–%v (it is %v)", MinGuidance, MaxGuidance, *g)
	}
	if d != nil {
		s.checkModel(*d, add)
	}
	if s.Cross != nil {
		checkWindow(add, "cross", *s.Cross)
	}
	if s.CrossChanged != nil {
		checkWindow(add, "cross_changed", *s.CrossChanged)
	}
	if s.Self != nil {
		checkWindow(add, "self", *s.Self)
	}
	if s.Norm != nil {
		checkWindow(add, "norm", *s.Norm)
	}
	if n := s.SelfMaxTokens; n != nil && (*n < 1 || *n > MaxSelfMaxTokens) {
		add("self_max_tokens", "must be a count of query positions from 1 to %d, e.g. 256 for the 16×16 layers and coarser at 512 px (it is %d)", MaxSelfMaxTokens, *n)
	}
	// A limit's problem comes before its entries' so that capping the
	// list never leaves it out.
	for _, c := range []struct {
		field string
		n     int
	}{{"cross_words", len(s.CrossWords)}, {"reweights", len(s.Reweights)}} {
		if c.n > MaxWordEntries {
			add(c.field, "has too many words: %d, the limit is %d", c.n, MaxWordEntries)
		}
	}
	for _, w := range firstWords(s.CrossWords) {
		checkWindow(add, wordField("cross_words", w), s.CrossWords[w])
	}
	for _, w := range firstWords(s.Reweights) {
		if f := s.Reweights[w]; !(f >= MinReweight && f <= MaxReweight) {
			add(wordField("reweights", w), "must be a factor from %v to %v (it is %v; the editor's slider spans %v to %v)", MinReweight, MaxReweight, f, UIMinReweight, UIMaxReweight)
		}
	}
	switch {
	case s.Image != "" && !sha256Hex.MatchString(s.Image):
		add("image", "%q is not a photo's content hash: want 64 lowercase hex digits (SHA-256)", abbreviate(s.Image))
	case s.Image == "" && s.Inversion != "":
		add("inversion", "is set but there is no photo to invert")
	}
	if s.Inversion != "" && !slices.Contains(Inversions, s.Inversion) {
		add("inversion", "must be one of %s (it is %q)", strings.Join(Inversions, ", "), abbreviate(s.Inversion))
	}
	if s.DecodeNorm != "" && !slices.Contains(DecodeNorms, s.DecodeNorm) {
		add("decode_norm", "must be %q (each image its own VAE-decoder statistics), %q (the source image's) "+
			"or %q (the source's for word swaps and reweights) (it is %q)", DecodeNormOwn, DecodeNormSource, DecodeNormSwaps, abbreviate(s.DecodeNorm))
	}

	tok, err := clip.Default()
	if err != nil {
		return nil, err
	}
	checkWords(s, tok, func(i int) bool { return s.BlendsImplicitly(tok, d, i) }, add)
	checkKinds(s, tok, add)
	return p.capped(), nil
}

// checkModel reports the fields the model does not support.
func (s Spec) checkModel(d Defaults, add func(string, string, ...any)) {
	size := d.Sizes[0]
	if s.Width != nil {
		size.Width = *s.Width
	}
	if s.Height != nil {
		size.Height = *s.Height
	}
	if !slices.Contains(d.Sizes, size) {
		field := "width"
		if s.Width == nil {
			field = "height"
		}
		add(field, "gives the size %s, which model %q does not make; it makes %s", size, d.Model, joinSizes(d.Sizes))
	}
	if s.Scheduler != "" && !slices.Contains(d.Schedulers, s.Scheduler) {
		add("scheduler", "must be one model %q runs: %s (it is %q)", d.Model, strings.Join(d.Schedulers, ", "), abbreviate(s.Scheduler))
	}
	if s.Model != "" && s.Model != d.Model {
		add("model", "must be %q, the model these settings are for (it is %q)", d.Model, abbreviate(s.Model))
	}
}

func checkWindow(add func(string, string, ...any), field string, w Window) {
	switch {
	case w.Start == 0 && !(w.End >= 0 && w.End <= 1):
		add(field, "must be a fraction of the steps from 0 to 1 (it is %v)", w.End)
	case !(w.Start >= 0 && w.Start <= w.End && w.End <= 1):
		add(field, "must be a part of the steps inside 0–1, start before end (it is [%v, %v])", w.Start, w.End)
	}
}

// checkWords reports words of cross_words, reweights and blend that are
// malformed or do not occur in the prompts they apply to (see Words), and
// blend entries that do not fit the targets.
func checkWords(s Spec, tok *clip.Tokenizer, blendsImplicitly func(target int) bool, add func(string, string, ...any)) {
	in := s.Words(tok)
	check := func(field, word, where string, occurs func(string) (bool, bool)) {
		switch {
		case strings.TrimSpace(word) == "":
			add(field, "is an empty word")
			return
		case len(word) > MaxWordBytes:
			add(field, "is too long for a word: %d bytes, the limit is %d", len(word), MaxWordBytes)
			return
		case !utf8.ValidString(word):
			add(field, "is not valid UTF-8 text")
			return
		}
		found, fits := occurs(word)
		switch {
		case !found:
			add(field, "does not occur in %s", where)
		case !fits:
			add(field, "occurs only past the %d-token limit of %s, where the model ignores it", clip.ContextLength, where)
		}
	}
	for _, w := range firstWords(s.CrossWords) {
		check(wordField("cross_words", w), w, "any edited prompt", in.InTargets)
	}
	for _, w := range firstWords(s.Reweights) {
		check(wordField("reweights", w), w, "any edited prompt", in.InTargets)
	}
	if len(s.Blend) > len(s.Targets) {
		add("blend", "has %d entries for %d edited prompts: one entry per edited prompt, in order", len(s.Blend), len(s.Targets))
	}
	for i, b := range s.Blend[:min(len(s.Blend), len(s.Targets), MaxTargets)] {
		entry := fmt.Sprintf("blend[%d]", i)
		where := fmt.Sprintf("the source prompt or edit %d", i+1)
		occurs := func(w string) (bool, bool) { return in.InBlendOf(i, w) }
		if n := len(b.Words) + len(b.Exclude); n > MaxWordEntries {
			add(entry, "has too many words: %d, the limit is %d", n, MaxWordEntries)
		}
		if len(b.Words) == 0 && len(b.Exclude) > 0 && !blendsImplicitly(i) {
			add(entry+".exclude", "needs blend words (or blend_changed, which blends on the words the edit changes, or blend_reweighted, "+
				"which blends a reweight on the words it reweights): excluded words only narrow the region of a local blend, and edit %d has none", i+1)
		}
		// Only the first MaxWordEntries words are checked one by one: more
		// are refused as a whole above.
		words := b.Words[:min(len(b.Words), MaxWordEntries)]
		exclude := b.Exclude[:min(len(b.Exclude), MaxWordEntries-len(words))]
		seen := map[string]string{}
		for _, list := range []struct {
			name  string
			words []string
		}{{"words", words}, {"exclude", exclude}} {
			for _, w := range list.words {
				field := wordField(entry+"."+list.name, w)
				if prev, ok := seen[w]; ok {
					if prev == list.name {
						add(field, "is listed twice")
					} else {
						add(field, "is both a blend word and an excluded word of edit %d", i+1)
					}
					continue
				}
				seen[w] = list.name
				check(field, w, where, occurs)
			}
		}
	}
}

// wordField is the path of a word's setting, e.g. `reweights["cat"]`. A
// word over MaxWordBytes, refused as too long, is abbreviated: the path
// names it without echoing however many bytes a client sent, while every
// word that could be valid keeps its exact path, which an editor matches
// to the word's controls.
func wordField(name, word string) string {
	if len(word) > MaxWordBytes {
		word = abbreviate(word)
	}
	return name + "[" + strconv.Quote(word) + "]"
}

// firstWords is the words of a word setting that validation checks one by
// one, in order: at most MaxWordEntries, since more are refused as a whole.
func firstWords[V any](m map[string]V) []string {
	words := sortedKeys(m)
	return words[:min(len(words), MaxWordEntries)]
}

func joinSizes(sizes []Size) string {
	out := make([]string, len(sizes))
	for i, s := range sizes {
		out[i] = s.String()
	}
	return strings.Join(out, ", ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// AlignConfig returns the alignment settings of the edit, for align.New.
func (r Resolved) AlignConfig() align.Config {
	var crossWords map[string]align.Window
	if len(r.CrossWords) > 0 {
		crossWords = make(map[string]align.Window, len(r.CrossWords))
		for w, win := range r.CrossWords {
			crossWords[w] = align.Window(win)
		}
	}
	return align.Config{
		Source:          r.Source,
		Targets:         slices.Clone(r.Targets),
		Steps:           r.Steps,
		Cross:           align.Window(r.Cross),
		CrossWords:      crossWords,
		CrossChanged:    (*align.Window)(clonePtr(r.CrossChanged)),
		Self:            align.Window(r.Self),
		Norm:            align.Window(r.Norm),
		Reweights:       cloneMap(r.Reweights),
		Blend:           r.alignBlend(),
		BlendChanged:    r.BlendChanged != nil && *r.BlendChanged,
		BlendReweighted: r.BlendReweighted != nil && *r.BlendReweighted,
		Kinds:           slices.Clone(r.Kinds),
		// The reference tail is the published code's mapping, kept so
		// that its numbers can be reproduced (docs/algorithm.md, 4.1).
		ReferenceReplaceTail: r.ReplaceTail == ReplaceTailReference,
	}
}

// resolvedSwitch is an on/off setting as resolved: the spec's (stated),
// else on where the model's default is on, else nil, so that a resolved
// spec states no setting that neither chose.
func resolvedSwitch(stated *bool, byDefault bool) *bool {
	switch {
	case stated != nil:
		return clonePtr(stated)
	case byDefault:
		on := true
		return &on
	}
	return nil
}

// Spec returns the resolved values as a spec with every field set, so that
// it resolves to the same values under any model defaults of the same model:
// the form a server echoes back and a share link carries.
func (r Resolved) Spec() Spec {
	seed, steps, guidance, width, height := r.Seed, r.Steps, r.Guidance, r.Width, r.Height
	cross, self := r.Cross, r.Self
	s := Spec{
		Source: r.Source, Targets: slices.Clone(r.Targets), Negative: r.Negative,
		Seed: &seed, Steps: &steps, Guidance: &guidance, Width: &width, Height: &height,
		Scheduler: r.Scheduler, Model: r.Model, Cross: &cross, CrossChanged: clonePtr(r.CrossChanged), CrossWords: cloneMap(r.CrossWords),
		Self: &self, Reweights: cloneMap(r.Reweights), Blend: cloneBlends(r.Blend), BlendChanged: clonePtr(r.BlendChanged),
		BlendReweighted: clonePtr(r.BlendReweighted),
		Image:           r.Image, Inversion: r.Inversion, Kinds: slices.Clone(r.Kinds), ReplaceTail: r.ReplaceTail, DecodeNorm: r.DecodeNorm,
		KeepSourceText: r.KeepSourceText,
	}
	if r.SelfMaxTokens > 0 {
		// Left out otherwise: the default is the engine's to choose.
		n := r.SelfMaxTokens
		s.SelfMaxTokens = &n
	}
	// Set even when empty: a spec without it takes the model's default.
	norm := r.Norm
	s.Norm = &norm
	s.normalize() // the default replace tail is left out
	return s
}

// alignBlend is the local blend of each target for align.Config, nil when
// no target is blended.
func (r Resolved) alignBlend() []align.Blend {
	if len(r.Blend) == 0 {
		return nil
	}
	out := make([]align.Blend, len(r.Targets))
	for i, b := range r.Blend {
		if i < len(out) {
			out[i] = align.Blend{Words: slices.Clone(b.Words), Exclude: slices.Clone(b.Exclude)}
		}
	}
	return out
}
