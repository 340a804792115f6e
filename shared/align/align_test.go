package align

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"reword/shared/clip"
)

func tokenizer(t testing.TB) *clip.Tokenizer {
	t.Helper()
	tok, err := clip.Default()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// symbolic encodes prompts with one id per word (the published test vectors
// assume each word is one CLIP token), BOS and EOS included.
type symbolic map[string]int32

func (s symbolic) ids(prompt string) []int32 {
	out := []int32{clip.BOS}
	for _, w := range strings.Fields(prompt) {
		if _, ok := s[w]; !ok {
			s[w] = int32(len(s) + 1)
		}
		out = append(out, s[w])
	}
	return append(out, clip.EOS)
}

func TestRefinementVectors(t *testing.T) {
	const u = -1
	for _, c := range []struct {
		x, y   string
		gather []int // target positions 0..|y|-1, then the tail continues n, n+1…
	}{
		{"a painting of a squirrel eating a burger", "a neoclassical painting of a squirrel eating a burger", []int{0, 1, u, 2, 3, 4, 5, 6, 7, 8, 9}},
		{"a photo of a house on a mountain", "a photo of a house on a mountain at fall", []int{0, 1, 2, 3, 4, 5, 6, 7, 8, u, u, 9}},
		{"soup", "pea soup with croutons", []int{0, u, 1, u, u, 2}},
		{"a cat sitting next to a mirror", "a tiger sitting next to a mirror", []int{0, 1, u, 3, 4, 5, 6, 7, 8}},
		{"a b c d", "a c b d", []int{0, 1, 3, u, 4, 5}},
	} {
		s := symbolic{}
		x, y := s.ids(c.x), s.ids(c.y)
		gather, keep := RefineMapper(x, y)
		for n := range clip.ContextLength {
			want, wantKeep := n, float32(1)
			if n < len(c.gather) {
				want = c.gather[n]
				if want < 0 {
					wantKeep = 0
				}
			}
			if gather[n] != want || keep[n] != wantKeep {
				t.Errorf("%q → %q: position %d gathers %d keep %v; want %d keep %v", c.x, c.y, n, gather[n], keep[n], want, wantKeep)
			}
		}
	}
}

func TestAlignIdentity(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for range 200 {
		x := make([]int32, 2+rng.IntN(40))
		for i := range x {
			x[i] = int32(rng.IntN(6)) // many repeats: ties everywhere
		}
		got := Align(x, x)
		for i, v := range got {
			if v != i {
				t.Fatalf("Align(x, x) for %v = %v; want the identity", x, got)
			}
		}
	}
}

// at reads M[w,n] of a 77×77 mapper.
func at(m []float32, w, n int) float32 { return m[w*clip.ContextLength+n] }

func TestReplacementVectors(t *testing.T) {
	// "a cat sits" → "a hippo sits" with hippo two tokens: cat is token 2,
	// hippo tokens 2–3.
	bug, err := ReplaceMapper([][]int{{2}}, [][]int{{2, 3}}, true)
	if err != nil {
		t.Fatal(err)
	}
	fixed, _ := ReplaceMapper([][]int{{2}}, [][]int{{2, 3}}, false)
	for _, c := range []struct {
		m    []float32
		w, n int
		want float32
	}{
		{bug, 0, 0, 1}, {bug, 1, 1, 1}, {bug, 2, 2, 0.5}, {bug, 2, 3, 0.5}, {bug, 4, 4, 1}, {bug, 5, 5, 1}, {bug, 3, 4, 0},
		{fixed, 2, 2, 0.5}, {fixed, 2, 3, 0.5}, {fixed, 3, 4, 1}, {fixed, 4, 5, 1}, {fixed, 4, 4, 0},
	} {
		if got := at(c.m, c.w, c.n); got != c.want {
			t.Errorf("1→2 tokens: M[%d,%d] = %v, want %v", c.w, c.n, got, c.want)
		}
	}
	for n := range clip.ContextLength {
		if at(bug, 3, n) != 0 {
			t.Errorf("reference 1→2: row 3 should stay zero, M[3,%d] = %v", n, at(bug, 3, n))
		}
	}
	// "a hippo sits" → "a cat sits": hippo tokens 2–3, cat token 2.
	bug, _ = ReplaceMapper([][]int{{2, 3}}, [][]int{{2}}, true)
	fixed, _ = ReplaceMapper([][]int{{2, 3}}, [][]int{{2}}, false)
	for _, c := range []struct {
		m    []float32
		w, n int
		want float32
	}{
		{bug, 2, 2, 1}, {bug, 3, 2, 1}, {bug, 3, 3, 1}, {bug, 4, 4, 1},
		{fixed, 2, 2, 1}, {fixed, 3, 2, 1}, {fixed, 4, 3, 1}, {fixed, 5, 4, 1}, {fixed, 3, 3, 0},
	} {
		if got := at(c.m, c.w, c.n); got != c.want {
			t.Errorf("2→1 tokens: M[%d,%d] = %v, want %v", c.w, c.n, got, c.want)
		}
	}
	if colSum(bug, 76) != 0 || colSum(fixed, 76) != 0 {
		t.Errorf("2→1 tokens: the last column should be zero (%v, %v)", colSum(bug, 76), colSum(fixed, 76))
	}
	// Equal token counts ("cat" → "tiger"): the identity.
	id, _ := ReplaceMapper([][]int{{2}}, [][]int{{2}}, false)
	for w := range clip.ContextLength {
		for n := range clip.ContextLength {
			if want := float32(b2i(w == n)); at(id, w, n) != want {
				t.Fatalf("cat→tiger: M[%d,%d] = %v, want %v", w, n, at(id, w, n), want)
			}
		}
	}
	for _, c := range []struct{ s, t [][]int }{{[][]int{{}}, [][]int{{2}}}, {[][]int{{2, 4}}, [][]int{{2}}}, {[][]int{{0}}, [][]int{{2}}}, {[][]int{{2}}, nil}} {
		if _, err := ReplaceMapper(c.s, c.t, false); err == nil {
			t.Errorf("ReplaceMapper(%v, %v) accepted malformed words", c.s, c.t)
		}
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func rowSum(m []float32, w int) float32 {
	var s float32
	for n := range clip.ContextLength {
		s += at(m, w, n)
	}
	return s
}

// unevenSwap reports a replace edit where some swapped word has a different
// number of tokens in the two prompts.
func unevenSwap(tok *clip.Tokenizer, src, tgt string, k Kind) bool {
	if k != Replace {
		return false
	}
	m, _ := matchPrompts(tok.Encode(src), tok.Encode(tgt), Auto)
	for _, k := range m.swapped {
		if len(m.source[k].Tokens) != len(m.target[k].Tokens) {
			return true
		}
	}
	return false
}

func colSum(m []float32, n int) float32 {
	var s float32
	for w := range clip.ContextLength {
		s += at(m, w, n)
	}
	return s
}

// steps reports the steps of [0, total) at which f is true.
func steps(total int, f func(i int) bool) []int {
	var out []int
	for i := range total {
		if f(i) {
			out = append(out, i)
		}
	}
	return out
}

func span(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// run evaluates all steps of a controller.
type run struct {
	c                 *Controller
	w, cc, self, norm [][]float32 // per step
}

func runAll(t *testing.T, c *Controller) run {
	t.Helper()
	e := c.Targets()
	r := run{c: c}
	for i := range c.Steps() {
		w, cc, s, g := make([]float32, e*77*77), make([]float32, e*77), make([]float32, e), make([]float32, e)
		if err := c.Step(i, w, cc, s, g); err != nil {
			t.Fatal(err)
		}
		r.w, r.cc, r.self, r.norm = append(r.w, w), append(r.cc, cc), append(r.self, s), append(r.norm, g)
	}
	return r
}

// sameRuns says whether two runs gave the same tensors at every step.
func sameRuns(a, b run) bool {
	equal := func(x, y [][]float32) bool {
		return slices.EqualFunc(x, y, func(p, q []float32) bool { return slices.Equal(p, q) })
	}
	return equal(a.w, b.w) && equal(a.cc, b.cc) && equal(a.self, b.self) && equal(a.norm, b.norm)
}

func TestSchedules(t *testing.T) {
	tok := tokenizer(t)
	for _, c := range []struct {
		cross, self, norm                Window
		crossSteps, selfSteps, normSteps []int
	}{
		{Window{0, 0.8}, Window{0, 0.4}, Window{}, span(0, 40), span(0, 20), nil},
		{Window{0, 0.4}, Window{0, 0.6}, Window{0, 0.4}, span(0, 20), span(0, 30), span(0, 20)},
		{Window{0, 1}, Window{0, 0.5}, Window{0, 1}, span(0, 50), span(0, 25), span(0, 50)},
		{Window{0.2, 0.6}, Window{0.1, 0.3}, Window{0.5, 0.7}, span(10, 30), span(5, 15), span(25, 35)},
	} {
		ctrl, err := New(tok, Config{Source: "a cat", Targets: []string{"a dog", "a big dog"}, Steps: 50, Cross: c.cross, Self: c.self, Norm: c.norm})
		if err != nil {
			t.Fatal(err)
		}
		r := runAll(t, ctrl)
		gotCross := steps(50, func(i int) bool { return r.cc[i][2] == 0 }) // c = 1 − α for a swap
		gotSelf := steps(50, func(i int) bool { return r.self[i][0] == 1 })
		gotNorm := steps(50, func(i int) bool { return r.norm[i][0] == 1 && r.norm[i][1] == 1 })
		if !slices.Equal(gotCross, c.crossSteps) || !slices.Equal(gotSelf, c.selfSteps) || !slices.Equal(gotNorm, c.normSteps) {
			t.Errorf("cross %v self %v norm %v: cross steps %v, self steps %v, norm steps %v; want %v, %v, %v",
				c.cross, c.self, c.norm, gotCross, gotSelf, gotNorm, c.crossSteps, c.selfSteps, c.normSteps)
		}
		for i := range 50 {
			if r.norm[i][0] != r.norm[i][1] || (r.norm[i][0] != 0 && r.norm[i][0] != 1) {
				t.Errorf("norm %v step %d: weights %v, want 0 or 1 for both targets", c.norm, i, r.norm[i])
			}
		}
	}
}

// TestWorkedExamples runs the example configurations of the Prompt-to-Prompt
// notebooks through the real tokenizer.
func TestWorkedExamples(t *testing.T) {
	tok := tokenizer(t)
	const squirrel = "A painting of a squirrel eating a burger"
	lion := "A painting of a lion eating a burger"

	// Replace, cross {"default_": 1.0, "lion": 0.4}, self 0.4, blend (squirrel, lion).
	ctrl, err := New(tok, Config{Source: squirrel, Targets: []string{lion}, Steps: 50, Cross: Window{0, 1},
		CrossWords: map[string]Window{"lion": {0, 0.4}}, Self: Window{0, 0.4}, Blend: []Blend{{Words: []string{"squirrel", "lion"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if ctrl.Kind(0) != Replace {
		t.Fatalf("squirrel → lion: kind %v, want replace", ctrl.Kind(0))
	}
	r := runAll(t, ctrl)
	lionTok := 5 // BOS a painting of a lion
	for i := range 50 {
		wantLion := float32(b2i(i < 20)) // int(0.4·51) = 20
		if got := r.w[i][lionTok*77+lionTok]; got != wantLion {
			t.Errorf("step %d: W[lion,lion] = %v, want %v", i, got, wantLion)
		}
		if got := r.w[i][2*77+2]; got != 1 {
			t.Errorf("step %d: W[painting,painting] = %v, want 1 (cross 1.0)", i, got)
		}
		if got := r.cc[i][lionTok]; got != 1-wantLion {
			t.Errorf("step %d: c[lion] = %v, want %v", i, got, 1-wantLion)
		}
	}
	blend := ctrl.BlendMasks()
	if len(blend) != 1 || blend[0] == nil || blend[0].Source[5] != 1 || blend[0].Target[5] != 1 ||
		sum(blend[0].Source) != 1 || sum(blend[0].Target) != 1 || blend[0].ExcludeSource != nil {
		t.Errorf("blend masks: %+v", blend)
	}

	// Refine: "A neoclassical painting of …", cross 0.5. The new word's
	// tokens keep their own attention (c = 1, W column 0).
	ctrl, err = New(tok, Config{Source: squirrel, Targets: []string{"A neoclassical painting of a squirrel eating a burger"}, Steps: 50, Cross: Window{0, 0.5}, Self: Window{0, 0.2}})
	if err != nil {
		t.Fatal(err)
	}
	if ctrl.Kind(0) != Refine {
		t.Fatalf("neoclassical: kind %v, want refine", ctrl.Kind(0))
	}
	enc := tok.Encode("A neoclassical painting of a squirrel eating a burger")
	added := WordTokens(tok, enc, "neoclassical")
	r = runAll(t, ctrl)
	for _, n := range added {
		if colSum(r.w[0], n) != 0 || r.cc[0][n] != 1 {
			t.Errorf("added token %d (%s): W column sum %v, c %v; want 0 and 1", n, enc.Tokens[n], colSum(r.w[0], n), r.cc[0][n])
		}
	}
	painting := added[len(added)-1] + 1
	if at(r.w[0], 2, painting) != 1 || r.cc[0][painting] != 0 {
		t.Errorf("painting (target %d) should copy source token 2: W %v c %v", painting, at(r.w[0], 2, painting), r.cc[0][painting])
	}

	// Reweight only: "a smiling bunny doll" ×2, smiling ×5.
	ctrl, err = New(tok, Config{Source: "a smiling bunny doll", Targets: []string{"a smiling bunny doll"}, Steps: 50, Cross: Window{0, 0.8}, Self: Window{0, 0.4}, Reweights: map[string]float64{"smiling": 5}})
	if err != nil {
		t.Fatal(err)
	}
	r = runAll(t, ctrl)
	if ctrl.Kind(0) != Reweight || at(r.w[0], 2, 2) != 5 || at(r.w[0], 3, 3) != 1 || r.cc[0][2] != 0 || at(r.w[45], 2, 2) != 0 || r.cc[45][2] != 1 {
		t.Errorf("smiling ×5: kind %v, W[2,2] %v, W[3,3] %v, c[2] %v; after the window W %v c %v",
			ctrl.Kind(0), at(r.w[0], 2, 2), at(r.w[0], 3, 3), r.cc[0][2], at(r.w[45], 2, 2), r.cc[45][2])
	}

	// Refine + reweight: "soup" → "pea soup with croutons", croutons ×3.
	ctrl, err = New(tok, Config{Source: "soup", Targets: []string{"pea soup with croutons"}, Steps: 50, Cross: Window{0, 0.8}, Self: Window{0, 0.4}, Reweights: map[string]float64{"croutons": 3}})
	if err != nil {
		t.Fatal(err)
	}
	enc = tok.Encode("pea soup with croutons")
	r = runAll(t, ctrl)
	for _, n := range WordTokens(tok, enc, "croutons") {
		// New tokens: c = α·E·(1−a) + (1−α) = E inside the window.
		if r.cc[0][n] != 3 || r.cc[45][n] != 1 {
			t.Errorf("croutons token %d: c %v (step 0), %v (step 45); want 3 and 1", n, r.cc[0][n], r.cc[45][n])
		}
	}

	// Multiple targets: one replace, one refine.
	ctrl, err = New(tok, Config{Source: "a photo of a house on a mountain", Targets: []string{"a photo of a house on a hill", "a photo of a house on a mountain at fall"}, Steps: 50, Cross: Window{0, 0.8}})
	if err != nil {
		t.Fatal(err)
	}
	if ctrl.Targets() != 2 || ctrl.Kind(0) != Replace || ctrl.Kind(1) != Refine {
		t.Errorf("kinds %v %v, want replace and refine", ctrl.Kind(0), ctrl.Kind(1))
	}
}

func sum(v []float32) (s float32) {
	for _, x := range v {
		s += x
	}
	return s
}

func nonzero(v []float32) []int {
	var out []int
	for i, x := range v {
		if x != 0 {
			out = append(out, i)
		}
	}
	return out
}

// TestControllerProperties checks random edits: W = 0 and c = 1 outside the
// windows, mapper columns sum to 1 or 0, self weights in {0,1}.
func TestControllerProperties(t *testing.T) {
	tok := tokenizer(t)
	words := []string{"a", "cat", "dog", "hippopotamus", "red", "photorealistic", "painting", "of", "the", "sitting", "on", "mat,", "café", "🎨"}
	rng := rand.New(rand.NewPCG(5, 6))
	prompt := func(n int) string {
		ws := make([]string, n)
		for i := range ws {
			ws[i] = words[rng.IntN(len(words))]
		}
		return strings.Join(ws, " ")
	}
	for trial := range 60 {
		src := prompt(1 + rng.IntN(10))
		var targets []string
		for range 1 + rng.IntN(4) {
			switch rng.IntN(3) {
			case 0:
				targets = append(targets, src)
			case 1: // same word count
				ws := strings.Fields(src)
				ws[rng.IntN(len(ws))] = words[rng.IntN(len(words))]
				targets = append(targets, strings.Join(ws, " "))
			default:
				targets = append(targets, prompt(1+rng.IntN(12)))
			}
		}
		if trial == 0 {
			src, targets = strings.Repeat("cat ", 90), []string{strings.Repeat("dog ", 90)}
		}
		cross := Window{rng.Float64() * 0.5, 0.5 + rng.Float64()*0.5}
		referenceTail := rng.IntN(2) == 0
		ctrl, err := New(tok, Config{Source: src, Targets: targets, Steps: 1 + rng.IntN(60), Cross: cross, Self: Window{0, rng.Float64()},
			Reweights: map[string]float64{words[rng.IntN(len(words))]: rng.Float64()*4 - 2}, ReferenceReplaceTail: referenceTail})
		if err != nil {
			t.Fatal(err)
		}
		for e := range ctrl.Targets() {
			m := ctrl.Mapper(e)
			for k := range 77 {
				// Every target token copies one source token, or none; a word
				// swapped for one of a different token count spreads each
				// source token's attention over the target's tokens instead,
				// so there every source token's row sums to 1 or 0.
				if s := colSum(m, k); s != 0 && math.Abs(float64(s)-1) > 1e-6 && !unevenSwap(tok, src, targets[e], ctrl.Kind(e)) {
					t.Fatalf("%q → %q (%v): mapper column %d sums to %v", src, targets[e], ctrl.Kind(e), k, s)
				}
				// (The reference's tail bug breaks this: it is off by default.)
				if s := rowSum(m, k); ctrl.Kind(e) == Replace && !referenceTail && s != 0 && math.Abs(float64(s)-1) > 1e-6 {
					t.Fatalf("%q → %q (replace): mapper row %d sums to %v", src, targets[e], k, s)
				}
			}
		}
		r := runAll(t, ctrl)
		from, to := crossSteps(cross, ctrl.Steps())
		for i := range ctrl.Steps() {
			if i >= from && i < to {
				continue
			}
			for k, v := range r.w[i] {
				if v != 0 {
					t.Fatalf("step %d outside the cross window: W[%d] = %v", i, k, v)
				}
			}
			for k, v := range r.cc[i] {
				if v != 1 {
					t.Fatalf("step %d outside the cross window: c[%d] = %v", i, k, v)
				}
			}
		}
	}
}

func TestStepChecksBuffersAndAllocatesNothing(t *testing.T) {
	ctrl, err := New(tokenizer(t), Config{Source: "a cat", Targets: []string{"a dog", "a big cat"}, Steps: 50, Cross: Window{0, 0.8}, Self: Window{0, 0.4}})
	if err != nil {
		t.Fatal(err)
	}
	w, c, s, g := make([]float32, 2*77*77), make([]float32, 2*77), make([]float32, 2), make([]float32, 2)
	if allocs := testing.AllocsPerRun(20, func() { _ = ctrl.Step(3, w, c, s, g) }); allocs != 0 {
		t.Errorf("Step allocates %v times", allocs)
	}
	for _, bad := range []func() error{
		func() error { return ctrl.Step(50, w, c, s, g) },
		func() error { return ctrl.Step(-1, w, c, s, g) },
		func() error { return ctrl.Step(0, w[:77*77], c, s, g) },
		func() error { return ctrl.Step(0, w, c[:1], s, g) },
		func() error { return ctrl.Step(0, w, c, nil, g) },
		func() error { return ctrl.Step(0, w, c, s, g[:1]) },
	} {
		if bad() == nil {
			t.Error("Step accepted a bad step index or buffer")
		}
	}
}

// TestCrossChanged: CrossChanged gives a word swap's changed words their
// own window without naming them — the lion example run through it
// matches the one that names "lion" in CrossWords, step by step — a
// CrossWords entry still wins over it, and a refinement, which has no
// swapped words, is left as it was.
func TestCrossChanged(t *testing.T) {
	tok := tokenizer(t)
	const squirrel = "A painting of a squirrel eating a burger"
	const lion = "A painting of a lion eating a burger"
	schedule := func(cfg Config) run {
		t.Helper()
		ctrl, err := New(tok, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return runAll(t, ctrl)
	}
	base := Config{Source: squirrel, Targets: []string{lion}, Steps: 50, Cross: Window{0, 1}, Self: Window{0, 0.4}}
	named := base
	named.CrossWords = map[string]Window{"lion": {0, 0.4}}
	changed := base
	changed.CrossChanged = &Window{0, 0.4}
	if !sameRuns(schedule(named), schedule(changed)) {
		t.Error(`CrossChanged 0.4 on squirrel → lion differs from CrossWords {"lion": 0.4}`)
	}
	if sameRuns(schedule(base), schedule(changed)) {
		t.Error("CrossChanged 0.4 changed nothing")
	}
	overridden := changed
	overridden.CrossWords = map[string]Window{"lion": {0, 1}}
	if !sameRuns(schedule(base), schedule(overridden)) {
		t.Error(`CrossWords {"lion": 1} does not win over CrossChanged`)
	}
	refine := Config{Source: squirrel, Targets: []string{"A neoclassical painting of a squirrel eating a burger"}, Steps: 50, Cross: Window{0, 0.8}}
	refineChanged := refine
	refineChanged.CrossChanged = &Window{0, 0.1}
	if !sameRuns(schedule(refine), schedule(refineChanged)) {
		t.Error("CrossChanged changed a refinement, which swaps no word")
	}
	bad := base
	bad.CrossChanged = &Window{0, math.NaN()}
	if _, err := New(tok, bad); err == nil {
		t.Error("New accepted a NaN CrossChanged window")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tok := tokenizer(t)
	for _, cfg := range []Config{
		{Source: "a", Steps: 50},
		{Source: "a", Targets: []string{"b"}, Steps: 0},
		{Source: "a", Targets: []string{"b"}, Steps: 50, Cross: Window{0.5, 0.2}},
		{Source: "a", Targets: []string{"b"}, Steps: 50, Self: Window{0, 1.5}},
		{Source: "a", Targets: []string{"b"}, Steps: 50, CrossWords: map[string]Window{"b": {0, math.NaN()}}},
		{Source: "a", Targets: []string{"b"}, Steps: 50, Reweights: map[string]float64{"b": math.Inf(1)}},
	} {
		if _, err := New(tok, cfg); err == nil {
			t.Errorf("New accepted %+v", cfg)
		}
	}
}

func TestWordTokens(t *testing.T) {
	tok := tokenizer(t)
	enc := tok.Encode("A Cat, a photorealistic cat's red car; cats")
	for word, want := range map[string][]int{
		"cat":       {2, 7},
		"CAT":       {2, 7},
		"realistic": nil,
		"red car":   {9, 10},
		"cats":      {12},
		"":          nil,
		"  ":        nil,
	} {
		if got := WordTokens(tok, enc, word); !slices.Equal(got, want) {
			t.Errorf("WordTokens(%q) = %v, want %v (tokens %q)", word, got, want, enc.Tokens)
		}
	}
}

// TestBlendMasksPerTarget: each target gets the blend it names and no
// other; a target without blend words (or with excluded words only) is
// not blended, and the words are looked up in the source and that target.
func TestBlendMasksPerTarget(t *testing.T) {
	tok := tokenizer(t)
	ctrl, err := New(tok, Config{Source: "a red circle", Steps: 10, Cross: Window{End: 0.8},
		Targets: []string{"a blue circle", "a red square", "a red circle on grass"},
		Blend:   []Blend{{}, {Exclude: []string{"red"}}, {Words: []string{"grass", "circle"}, Exclude: []string{"red"}}}})
	if err != nil {
		t.Fatal(err)
	}
	masks := ctrl.BlendMasks()
	if len(masks) != 3 || masks[0] != nil || masks[1] != nil || masks[2] == nil {
		t.Fatalf("masks %+v; want only the third target blended", masks)
	}
	m := masks[2]
	// a red circle: circle is token 3; a red circle on grass: circle 3, grass 5; red is token 2.
	if fmt.Sprint(nonzero(m.Source), nonzero(m.Target), nonzero(m.ExcludeSource), nonzero(m.ExcludeTarget)) != "[3] [3 5] [2] [2]" {
		t.Errorf("blend of target 3: words %v / %v, excluded %v / %v", nonzero(m.Source), nonzero(m.Target), nonzero(m.ExcludeSource), nonzero(m.ExcludeTarget))
	}
	if ctrl, err = New(tok, Config{Source: "a", Targets: []string{"b"}, Steps: 1, Blend: []Blend{{}}}); err != nil || ctrl.BlendMasks() != nil {
		t.Errorf("an empty blend entry: masks %v, err %v; want none", ctrl.BlendMasks(), err)
	}
	if _, err := New(tok, Config{Source: "a", Targets: []string{"b"}, Steps: 1, Blend: []Blend{{}, {Words: []string{"a"}}}}); err == nil {
		t.Error("more blends than targets accepted")
	}
}

// TestChangedWords: the words a target blends on with BlendChanged are
// what the editor's diff marks: a swap's two words, an addition's new
// words, a removal's dropped ones, nothing for an unchanged prompt; each
// text once, the source's first.
func TestChangedWords(t *testing.T) {
	tok := tokenizer(t)
	for _, c := range []struct {
		source, target string
		want           []string
	}{
		{"a red circle on grass", "a blue circle on grass", []string{"red", "blue"}},
		{"a red circle", "a red square", []string{"circle", "square"}},
		{"a red circle", "a red circle on grass", []string{"on", "grass"}},
		{"a red circle on grass", "a red circle", []string{"on", "grass"}},
		{"a red circle and a red square", "a blue circle and a blue square", []string{"red", "blue"}},
		{"a red circle", "a red circle", nil},
	} {
		src, tgt := tok.Encode(c.source), tok.Encode(c.target)
		if got := Compare(src, tgt).ChangedWords(c.source, c.target); !slices.Equal(got, c.want) {
			t.Errorf("%q → %q: %q; want %q", c.source, c.target, got, c.want)
		}
	}
}

// TestBlendChanged: with BlendChanged, a target without blend words of its
// own blends on the words it changes (keeping its excluded words), one
// with blend words keeps them, and a pure reweight, which changes no word,
// is not blended.
func TestBlendChanged(t *testing.T) {
	tok := tokenizer(t)
	ctrl, err := New(tok, Config{Source: "a red circle on grass", Steps: 10, Cross: Window{End: 0.8}, BlendChanged: true,
		Targets: []string{"a blue circle on grass", "a red square on grass", "a red circle on grass", "a red circle"},
		Blend:   []Blend{{}, {Words: []string{"grass"}}, {}, {Exclude: []string{"circle"}}}})
	if err != nil {
		t.Fatal(err)
	}
	masks := ctrl.BlendMasks()
	if len(masks) != 4 || masks[0] == nil || masks[1] == nil || masks[2] != nil || masks[3] == nil {
		t.Fatalf("masks %+v; want every target but the reweight blended", masks)
	}
	// a red circle on grass: red 2, circle 3, on 4, grass 5.
	for i, want := range []string{"[2] [2] [] []", "[5] [5] [] []", "", "[4 5] [] [3] [3]"} {
		if i == 2 {
			continue
		}
		m := masks[i]
		if got := fmt.Sprint(nonzero(m.Source), nonzero(m.Target), nonzero(m.ExcludeSource), nonzero(m.ExcludeTarget)); got != want {
			t.Errorf("target %d: words %s / excluded, want %s", i+1, got, want)
		}
	}
	off, err := New(tok, Config{Source: "a red circle", Targets: []string{"a blue circle"}, Steps: 10})
	if err != nil || off.BlendMasks() != nil {
		t.Errorf("without BlendChanged: masks %v, err %v; want none", off.BlendMasks(), err)
	}
}

// TestBlendReweighted: with BlendReweighted, a pure reweight without blend
// words of its own blends on the words reweighted by a factor other than 1
// (keeping its excluded words), one with blend words keeps them, and a
// word swap, which is no reweight, is not blended by it.
func TestBlendReweighted(t *testing.T) {
	tok := tokenizer(t)
	ctrl, err := New(tok, Config{Source: "a red circle on grass", Steps: 10, Cross: Window{End: 0.8}, BlendReweighted: true,
		Reweights: map[string]float64{"red": -1, "grass": 1},
		Targets:   []string{"a red circle on grass", "a red circle on grass", "a red circle on grass", "a blue circle on grass"},
		Blend:     []Blend{{}, {Words: []string{"circle"}}, {Exclude: []string{"grass"}}}})
	if err != nil {
		t.Fatal(err)
	}
	masks := ctrl.BlendMasks()
	if len(masks) != 4 || masks[0] == nil || masks[1] == nil || masks[2] == nil || masks[3] != nil {
		t.Fatalf("masks %+v; want the three reweights blended and the swap not", masks)
	}
	// a red circle on grass: red 2, circle 3, on 4, grass 5; "grass" is
	// reweighted by 1, which changes nothing, so it is no blend word.
	for i, want := range []string{"[2] [2] [] []", "[3] [3] [] []", "[2] [2] [5] [5]"} {
		m := masks[i]
		if got := fmt.Sprint(nonzero(m.Source), nonzero(m.Target), nonzero(m.ExcludeSource), nonzero(m.ExcludeTarget)); got != want {
			t.Errorf("target %d: words %s / excluded, want %s", i+1, got, want)
		}
	}
}
