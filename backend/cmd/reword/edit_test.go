package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"reword/backend/diffusion/pngtext"
	"reword/backend/model"
	"reword/models/tiny/tinytest"
	"reword/shared/align"
	"reword/shared/edit"
)

// TestBlendFlagsBelongToTheirTarget: --blend and --blend-exclude apply to
// the --to before them; a target without them is not blended, and a
// --blend before any --to says where it goes.
func TestBlendFlagsBelongToTheirTarget(t *testing.T) {
	s, err := parseEditFlags("--to", "a blue circle", "--to", "a red square", "--to", "a red circle on grass",
		"--blend", "grass", "--blend", "circle", "--blend-exclude", "red")
	if err != nil {
		t.Fatal(err)
	}
	want := []edit.Blend{{}, {}, {Words: []string{"grass", "circle"}, Exclude: []string{"red"}}}
	if !reflect.DeepEqual(s.Blend, want) || len(s.Targets) != 3 {
		t.Errorf("blend %+v, targets %q; want %+v", s.Blend, s.Targets, want)
	}
	if _, err := parseEditFlags("--blend", "cat,tiger", "--to", "a tiger"); err == nil || !strings.Contains(err.Error(), "put --blend after that target's --to") {
		t.Errorf("--blend before --to: %v", err)
	}
	if _, err := parseEditFlags("--to", "a tiger", "--blend", " , "); err == nil || !strings.Contains(err.Error(), "no words") {
		t.Errorf("--blend without words: %v", err)
	}
}

// TestKindFlagsBelongToTheirTarget: --kind applies to the --to before it,
// a target without one is auto, and a misplaced, unknown or repeated
// --kind says what is wrong; --replace-tail sets the spec's option.
func TestKindFlagsBelongToTheirTarget(t *testing.T) {
	s, err := parseEditFlags("--to", "a cat sleeping", "--kind", "refine", "--to", "a big dog", "--to", "a red cat", "--kind", "replace",
		"--replace-tail", "reference")
	if err != nil {
		t.Fatal(err)
	}
	want := []align.Choice{align.ForceRefine, align.Auto, align.ForceReplace}
	if !reflect.DeepEqual(s.Kinds, want) || s.ReplaceTail != edit.ReplaceTailReference {
		t.Errorf("kinds %q, replace tail %q; want %q and reference", s.Kinds, s.ReplaceTail, want)
	}
	if s, err := parseEditFlags("--to", "a dog", "--kind", "auto"); err != nil || s.Kinds != nil || s.ReplaceTail != "" {
		t.Errorf("--kind auto: kinds %q, tail %q, %v; want none", s.Kinds, s.ReplaceTail, err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--kind", "refine", "--to", "a dog"}, "put --kind after that target's --to"},
		{[]string{"--to", "a dog", "--kind", "swap"}, `"swap" is no edit kind: want one of auto, replace, refine`},
		{[]string{"--to", "a dog", "--kind", "refine", "--kind", "replace"}, `--to "a dog" has two kinds (refine and replace)`},
		{[]string{"--to", "a dog", "--replace-tail", "published"}, `--replace-tail "published": want one of aligned, reference`},
		{[]string{"--to", "a dog", "--decode-norm", "target"}, `--decode-norm "target": want one of own, source, swaps`},
		{[]string{"--to", "a dog", "--baseline", "--decode-norm", "source"}, "decode-norm"},
	} {
		if _, err := parseEditFlags(c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v; want an error with %q", c.args, err, c.want)
		}
	}
}

// TestSelfMaxTokensFlag: --self-max-tokens sets the spec's limit, left out
// it leaves the model's default, and a count out of range or no number
// says what is allowed.
func TestSelfMaxTokensFlag(t *testing.T) {
	s, err := parseEditFlags("--to", "a dog", "--self-max-tokens", "1024")
	if err != nil || s.SelfMaxTokens == nil || *s.SelfMaxTokens != 1024 {
		t.Errorf("--self-max-tokens 1024: %v, %v", s.SelfMaxTokens, err)
	}
	if s, err := parseEditFlags("--to", "a dog"); err != nil || s.SelfMaxTokens != nil {
		t.Errorf("no --self-max-tokens: %v, %v; want none", s.SelfMaxTokens, err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--to", "a dog", "--self-max-tokens", "0"}, "--self-max-tokens 0: want a count of query positions from 1 to 1048576"},
		{[]string{"--to", "a dog", "--self-max-tokens", "-3"}, "--self-max-tokens -3: want a count"},
		{[]string{"--to", "a dog", "--self-max-tokens", "many"}, `"many" is not a whole number`},
	} {
		if _, err := parseEditFlags(c.args...); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v; want an error with %q", c.args, err, c.want)
		}
	}
}

// TestKeepSourceTextFlag: --keep-source-text turns the spec's opt-in on;
// without it the spec leaves it off.
func TestKeepSourceTextFlag(t *testing.T) {
	if s, err := parseEditFlags("--to", "a dog", "--keep-source-text"); err != nil || !s.KeepSourceText {
		t.Errorf("--keep-source-text: %v, %v; want it on", s.KeepSourceText, err)
	}
	if s, err := parseEditFlags("--to", "a dog"); err != nil || s.KeepSourceText {
		t.Errorf("no --keep-source-text: %v, %v; want it off", s.KeepSourceText, err)
	}
	if _, err := parseEditFlags("--to", "a dog", "--keep-source-text=maybe"); err == nil || !strings.Contains(err.Error(), "keep-source-text") {
		t.Errorf("--keep-source-text=maybe: %v; want an error naming the flag", err)
	}
}

// TestNormFlag: --norm f sets the spec's norm window [0, f), --norm 0 an
// empty one (off whatever the model's default); without it the spec has
// none, and the model's default applies.
func TestNormFlag(t *testing.T) {
	if s, err := parseEditFlags("--to", "a dog", "--norm", "0.4"); err != nil || s.Norm == nil || *s.Norm != edit.Fraction(0.4) {
		t.Errorf("--norm 0.4: %v, %v; want [0, 0.4)", s.Norm, err)
	}
	if s, err := parseEditFlags("--to", "a dog", "--norm", "0"); err != nil || s.Norm == nil || *s.Norm != (edit.Window{}) {
		t.Errorf("--norm 0: %v, %v; want an empty window", s.Norm, err)
	}
	if s, err := parseEditFlags("--to", "a dog", "--decode-norm", "source"); err != nil || s.DecodeNorm != edit.DecodeNormSource {
		t.Errorf("--decode-norm source: %q, %v", s.DecodeNorm, err)
	}
	if s, err := parseEditFlags("--to", "a dog"); err != nil || s.Norm != nil {
		t.Errorf("no --norm: %v, %v; want none", s.Norm, err)
	}
	if _, err := parseEditFlags("--to", "a dog", "--norm", "early"); err == nil || !strings.Contains(err.Error(), "norm") {
		t.Errorf("--norm early: %v; want an error naming the flag", err)
	}
	for _, flag := range []string{"--norm", "--cross", "--cross-changed", "--self"} {
		if _, err := parseEditFlags("--to", "a dog", flag, "-0.5"); err == nil || !strings.Contains(err.Error(), flag+" -0.5") {
			t.Errorf("%s -0.5: %v; want an error naming the flag and its value", flag, err)
		}
	}
}

// parseEditFlags parses `reword edit` flags into a spec as the command does.
func parseEditFlags(args ...string) (edit.Spec, error) {
	fs := newFlagSet("edit", "", io.Discard)
	f := addEditFlags(fs)
	var s edit.Spec
	if err := parseFlags(fs, args); err != nil {
		return s, err
	}
	return s, f.apply(&s)
}

// applyEditFlags applies the edit flags args to a valid spec of source
// (seeded), so that the checks that need valid prompts run.
func applyEditFlags(source string, args ...string) error {
	fs := newFlagSet("edit", "", io.Discard)
	f := addEditFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	seed := uint64(1)
	s := edit.Spec{Source: source, Seed: &seed}
	return f.apply(&s)
}

// TestEditReportsTheSpecAsItRan: `reword edit` writes the spec as it ran,
// every default filled in (the tiny model's norm window among them), into
// its JSON report, so that the report says what ran under any later
// defaults; --norm 0 is reported as 0.
func TestEditReportsTheSpecAsItRan(t *testing.T) {
	dir := tinytest.Private(t)
	m, err := model.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		extra []string
		norm  float64
	}{{nil, m.Defaults.Norm}, {[]string{"--norm", "0"}, 0}} {
		args := append([]string{"edit", "--model", dir, "--threads", "1", "--steps", "3", "--json", "--prompt", "a red circle",
			"--to", "a blue circle", "--seed", "1", "--out", t.TempDir()}, c.extra...)
		var ran struct {
			Spec struct {
				Steps *int     `json:"steps"`
				Cross *float64 `json:"cross"`
				Norm  *float64 `json:"norm"`
			} `json:"spec"`
		}
		if err := json.Unmarshal([]byte(runOK(t, args...)), &ran); err != nil {
			t.Fatal(err)
		}
		if s := ran.Spec; s.Steps == nil || *s.Steps != 3 || s.Cross == nil || s.Norm == nil || *s.Norm != c.norm {
			t.Errorf("%q: the report's spec has steps %v, cross %v, norm %v; want 3, the model's cross and norm %v", c.extra, s.Steps, s.Cross, s.Norm, c.norm)
		}
	}
}

// TestBaselineTakesNoControlFlags: --baseline runs no attention control,
// so a control flag with it is a usage error naming both flags rather
// than a setting silently ignored; alone, it sets every window of the
// spec empty, which is what a baseline runs.
func TestBaselineTakesNoControlFlags(t *testing.T) {
	for _, c := range [][]string{
		{"--cross", "0.5"}, {"--cross-changed", "0.4"}, {"--cross-word", "dog=0.4"}, {"--self", "0.2"}, {"--self-max-tokens", "256"}, {"--reweight", "dog=2"},
		{"--blend", "dog"}, {"--blend-exclude", "dog"}, {"--kind", "refine"}, {"--replace-tail", "reference"}, {"--norm", "0"}, {"--keep-source-text"}, {"--blend-changed"},
	} {
		args := append([]string{"--to", "a dog", "--baseline"}, c...)
		want := c[0] + " and --baseline"
		if _, err := parseEditFlags(args...); !errors.Is(err, errUsage) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v; want a usage error with %q", args, err, want)
		}
	}
	s, err := parseEditFlags("--to", "a dog", "--baseline")
	none := &edit.Window{}
	if err != nil || !reflect.DeepEqual(s.Cross, none) || !reflect.DeepEqual(s.CrossChanged, none) || !reflect.DeepEqual(s.Self, none) || !reflect.DeepEqual(s.Norm, none) {
		t.Errorf("--baseline: cross %v, cross_changed %v, self %v, norm %v, %v; want every window empty", s.Cross, s.CrossChanged, s.Self, s.Norm, err)
	}
}

// TestBlendChangedFlag: --blend-changed turns the spec's blend_changed
// on, --blend-changed=false off (whatever the model's default), and
// without it the spec leaves it to the model.
func TestBlendChangedFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--blend-changed"}, "true"},
		{[]string{"--blend-changed=true"}, "true"},
		{[]string{"--blend-changed=false"}, "false"},
		{nil, "<nil>"},
	} {
		s, err := parseEditFlags(append([]string{"--to", "a dog"}, c.args...)...)
		got := "<nil>"
		if s.BlendChanged != nil {
			got = strconv.FormatBool(*s.BlendChanged)
		}
		if err != nil || got != c.want {
			t.Errorf("%q: blend_changed %s, %v; want %s", c.args, got, err, c.want)
		}
	}
	if _, err := parseEditFlags("--to", "a dog", "--blend-changed=maybe"); err == nil || !strings.Contains(err.Error(), "blend-changed") {
		t.Errorf("--blend-changed=maybe: %v; want an error naming the flag", err)
	}
	// Where no target would take it, it is a usage error saying why.
	parse := func(args ...string) error { return applyEditFlags("a cat", args...) }
	for _, args := range [][]string{
		{"--to", "a cat", "--reweight", "cat=2", "--blend-changed"},
		{"--to", "a dog", "--blend", "dog", "--blend-changed"},
	} {
		if err := parse(args...); !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "no target would blend") {
			t.Errorf("%q: %v; want a usage error saying no target would blend", args, err)
		}
	}
	for _, args := range [][]string{
		{"--to", "a dog", "--blend", "dog", "--to", "a cow", "--blend-changed"},
		{"--to", "a cat on grass", "--blend-changed"},
		{"--to", "a cat", "--reweight", "cat=2", "--blend-changed=false"},
	} {
		if err := parse(args...); err != nil {
			t.Errorf("%q: %v", args, err)
		}
	}
}

// TestBlendReweightedFlag: --blend-reweighted turns the spec's
// blend_reweighted on, =false off, and without it the spec leaves it to
// the model; where no target only reweights (or every such target has
// --blend words) it is a usage error saying so.
func TestBlendReweightedFlag(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--blend-reweighted"}, "true"},
		{[]string{"--blend-reweighted=false"}, "false"},
		{nil, "<nil>"},
	} {
		s, err := parseEditFlags(append([]string{"--to", "a cat", "--reweight", "cat=2"}, c.args...)...)
		got := "<nil>"
		if s.BlendReweighted != nil {
			got = strconv.FormatBool(*s.BlendReweighted)
		}
		if err != nil || got != c.want {
			t.Errorf("%q: blend_reweighted %s, %v; want %s", c.args, got, err, c.want)
		}
	}
	parse := func(args ...string) error { return applyEditFlags("a cat", args...) }
	for _, args := range [][]string{
		{"--to", "a dog", "--blend-reweighted"},
		{"--to", "a cat", "--reweight", "cat=2", "--blend", "cat", "--blend-reweighted"},
		{"--to", "a cat", "--reweight", "cat=1", "--blend-reweighted"},
	} {
		if err := parse(args...); !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "no target would blend on its reweighted words") {
			t.Errorf("%q: %v; want a usage error saying no target would blend", args, err)
		}
	}
	for _, args := range [][]string{
		{"--to", "a cat", "--reweight", "cat=-1", "--blend-reweighted"},
		{"--to", "a dog", "--to", "a cat", "--reweight", "cat=2", "--blend-reweighted"},
		{"--to", "a dog", "--blend-reweighted=false"},
	} {
		if err := parse(args...); err != nil {
			t.Errorf("%q: %v", args, err)
		}
	}
}

// baselineRun runs a --baseline edit of the model in dir into out's
// "baseline" folder and returns its arguments but --baseline and --out
// (to run the same edit again) and the spec its target image carries.
func baselineRun(t *testing.T, dir, out string) ([]string, edit.Spec) {
	t.Helper()
	common := []string{"edit", "--model", dir, "--threads", "1", "--steps", "3", "--prompt", "a red circle", "--to", "a blue circle", "--seed", "1"}
	runOK(t, append(common, "--baseline", "--out", filepath.Join(out, "baseline"))...)
	f, err := os.Open(filepath.Join(out, "baseline", "target-1.png"))
	must(t, err)
	raw, err := io.ReadAll(f)
	f.Close()
	must(t, err)
	text, _, err := pngtext.Read(bytes.NewReader(raw), pngtext.SpecKey)
	must(t, err)
	if m, ok, err := pngtext.Read(bytes.NewReader(raw), pngtext.MeaningKey); err != nil || !ok || m != strconv.Itoa(edit.MeaningVersion) {
		t.Errorf("the image carries meaning %q (%v, %v); want %d", m, ok, err, edit.MeaningVersion)
	}
	s, err := edit.ParseSpec([]byte(text))
	must(t, err)
	return common, s
}

// TestBaselineImagesRecordWhatRan: the spec a --baseline image carries is
// the run it came from (every control off), not the model's
// Prompt-to-Prompt defaults, and running that spec without --baseline
// gives the same pixels.
func TestBaselineImagesRecordWhatRan(t *testing.T) {
	dir := tinytest.Private(t)
	setDefaults(t, dir, map[string]any{"blend_changed": nil, "decode_norm": nil, "blend_reweighted": nil})
	out := t.TempDir()
	common, s := baselineRun(t, dir, out)
	for name, w := range map[string]*edit.Window{"cross": s.Cross, "cross_changed": s.CrossChanged, "self": s.Self, "norm": s.Norm} {
		if w == nil || *w != (edit.Window{}) {
			t.Errorf("the baseline image's spec has %s %v; want 0 (no control ran)", name, w)
		}
	}
	if s.BlendChanged != nil || s.DecodeNorm != "" || s.BlendReweighted != nil {
		t.Errorf("the baseline image's spec has blend_changed %v, decode_norm %q, blend_reweighted %v on a model without those defaults; want them left out",
			s.BlendChanged, s.DecodeNorm, s.BlendReweighted)
	}
	runOK(t, append(common, "--cross", "0", "--cross-changed", "0", "--self", "0", "--norm", "0", "--out", filepath.Join(out, "spec"))...)
	a, b := readPNG(t, filepath.Join(out, "baseline", "target-1.png")), readPNG(t, filepath.Join(out, "spec", "target-1.png"))
	if !reflect.DeepEqual(a, b) {
		t.Error("the baseline's recorded spec, run without --baseline, gives other pixels")
	}
}

// TestBaselineRecordsNoBlend: on a model that blends on the changed words
// and decodes with the source's statistics by default, a --baseline
// image's spec states blend_changed false and decode_norm own (it did
// neither), and that spec run without --baseline gives the same pixels.
func TestBaselineRecordsNoBlend(t *testing.T) {
	dir := tinytest.Private(t)
	setDefaults(t, dir, map[string]any{"blend_changed": true, "decode_norm": edit.DecodeNormSwaps, "blend_reweighted": true})
	out := t.TempDir()
	common, s := baselineRun(t, dir, out)
	if s.BlendChanged == nil || *s.BlendChanged || s.DecodeNorm != edit.DecodeNormOwn || s.BlendReweighted == nil || *s.BlendReweighted {
		t.Fatalf("the baseline image's spec has blend_changed %v, decode_norm %q, blend_reweighted %v; want false, own and false (none ran)",
			s.BlendChanged, s.DecodeNorm, s.BlendReweighted)
	}
	runOK(t, append(common, "--cross", "0", "--cross-changed", "0", "--self", "0", "--norm", "0", "--blend-changed=false", "--decode-norm", "own",
		"--out", filepath.Join(out, "spec"))...)
	runOK(t, append(common, "--cross", "0", "--cross-changed", "0", "--self", "0", "--norm", "0", "--out", filepath.Join(out, "blended"))...)
	base, spec, blended := readPNG(t, filepath.Join(out, "baseline", "target-1.png")), readPNG(t, filepath.Join(out, "spec", "target-1.png")),
		readPNG(t, filepath.Join(out, "blended", "target-1.png"))
	if !reflect.DeepEqual(base, spec) {
		t.Error("the baseline's recorded spec, run without --baseline, gives other pixels")
	}
	if reflect.DeepEqual(base, blended) {
		t.Error("the model's blend default did not reach a run that leaves blend_changed out")
	}
}

// setDefaults sets the defaults of the model in dir (a private copy) that
// values names, and removes those it maps to nil.
func setDefaults(t *testing.T, dir string, values map[string]any) {
	t.Helper()
	manifest := filepath.Join(dir, model.ManifestFile)
	raw, err := os.ReadFile(manifest)
	must(t, err)
	var m map[string]any
	must(t, json.Unmarshal(raw, &m))
	defaults, ok := m["defaults"].(map[string]any)
	if !ok {
		t.Fatalf("%s has no defaults object", manifest)
	}
	for k, v := range values {
		if v == nil {
			delete(defaults, k)
		} else {
			defaults[k] = v
		}
	}
	raw, err = json.MarshalIndent(m, "", " ")
	must(t, err)
	must(t, os.WriteFile(manifest, raw, 0o644))
}

// TestEditChecksBeforeTheModel: what can be checked without the model is,
// before it loads (the model folder here does not exist, so reaching it
// would be another error): an --out folder holding an earlier run's
// images, which are left as they are (a one-target edit would otherwise
// write next to an earlier target-2.png), and the flags and the spec.
func TestEditChecksBeforeTheModel(t *testing.T) {
	noModel := filepath.Join(t.TempDir(), "no-model")
	earlier := t.TempDir()
	must(t, os.WriteFile(filepath.Join(earlier, "target-2.png"), []byte("earlier"), 0o644))
	notFolder := filepath.Join(earlier, "target-2.png")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--to", "a blue circle", "--out", earlier}, "--out " + earlier + " already holds target-2.png from an earlier run: name a new or empty folder"},
		{[]string{"--to", "a blue circle", "--out", notFolder}, "--out " + notFolder + ": mkdir"},
		{[]string{"--to", "a blue circle", "--guidance", "-1", "--out", t.TempDir()}, "--guidance -1: want a scale from 0 to 30"},
		{[]string{"--to", "a blue circle", "--steps", "-2", "--out", t.TempDir()}, "--steps -2: want 1 to 150 diffusion steps"},
		{[]string{"--to", "a blue circle", "--scheduler", "euler", "--out", t.TempDir()}, `--scheduler "euler": want one of`},
		{[]string{"--to", "a big blue circle", "--kind", "replace", "--out", t.TempDir()}, "kinds[0] cannot be replace"},
		{[]string{"--to", randomWords(1, 1500), "--to", randomWords(2, 1500), "--to", randomWords(3, 1500), "--to", randomWords(4, 1500), "--out", t.TempDir()},
			"the prompts are too long for Reword, whose every edit fits in an edit link"},
	} {
		args := append([]string{"edit", "--model", noModel, "--prompt", "a red circle", "--seed", "1"}, c.args...)
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 and %q", c.args, code, stderr.String(), c.want)
		}
	}
	if b, err := os.ReadFile(filepath.Join(earlier, "target-2.png")); err != nil || string(b) != "earlier" {
		t.Errorf("the earlier image is now %q (%v)", b, err)
	}
}

// randomWords is about n bytes of words that compress as little as
// prompts can: the hex digits of a chain of SHA-256 digests, cut into
// words of eight.
func randomWords(seed uint64, n int) string {
	sum := sha256.Sum256([]byte(strconv.FormatUint(seed, 10)))
	var b strings.Builder
	for b.Len() < n {
		sum = sha256.Sum256(sum[:])
		digits := hex.EncodeToString(sum[:])
		for i := 0; i < len(digits); i += 8 {
			b.WriteString(digits[i : i+8])
			b.WriteByte(' ')
		}
	}
	return strings.TrimSpace(b.String())
}

// TestCrossChangedNeedsAWordSwap: --cross-changed applies to the words a
// word swap changes, so given where no target swaps one it is a usage
// error saying so, not a setting that silently does nothing.
func TestCrossChangedNeedsAWordSwap(t *testing.T) {
	parse := func(args ...string) error { return applyEditFlags("a red circle", args...) }
	for _, args := range [][]string{
		{"--to", "a red circle on grass", "--cross-changed", "0.4"},
		{"--to", "a blue circle", "--kind", "refine", "--cross-changed", "0.4"},
		{"--to", "a red circle", "--reweight", "red=2", "--cross-changed", "0.4"},
	} {
		if err := parse(args...); !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "no --to target swaps a word") {
			t.Errorf("%q: %v; want a usage error saying no target swaps a word", args, err)
		}
	}
	for _, args := range [][]string{
		{"--to", "a blue circle", "--cross-changed", "0.4"},
		{"--to", "a red circle on grass", "--to", "a red square", "--cross-changed", "0.4"},
		{"--to", "a red circle on grass"},
	} {
		if err := parse(args...); err != nil {
			t.Errorf("%q: %v", args, err)
		}
	}
}
