package web

import (
	"html"
	"strings"
	"testing"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"reword/shared/align"
	"reword/shared/clip"
	"reword/shared/edit"
)

// tinySelfDefaults are tinyDefaults with the tiny model's self-attention
// layers, as its server's hello tells them.
func tinySelfDefaults() edit.Defaults {
	d := *tinyDefaults
	d.SelfLayers = []edit.SelfLayerGroup{{Grid: edit.Size{Width: 4, Height: 4}, Layers: 4},
		{Grid: edit.Size{Width: 8, Height: 8}, Layers: 3}, {Grid: edit.Size{Width: 16, Height: 16}, Layers: 3}}
	d.SelfMaxTokens, d.PhotoSelfMaxTokens = 256, 256
	return d
}

// TestSelfLayerOptions: the menu offers the default (naming its layers)
// and one choice per grid, and shows a value a link brought that is none
// of them.
func TestSelfLayerOptions(t *testing.T) {
	d := tinySelfDefaults()
	got := selfLayerOptions(d, nil, false)
	want := []choiceOption{
		{"default", "model default: 16×16 and coarser (≤ 256 positions, 10 of 10 layers)"},
		{"16", "4×4 only (≤ 16 positions, 4 of 10 layers)"},
		{"64", "8×8 and coarser (≤ 64 positions, 7 of 10 layers)"},
		{"256", "16×16 and coarser (≤ 256 positions, 10 of 10 layers)"},
	}
	if !equalOptions(got, want) {
		t.Errorf("options\n%v\nwant\n%v", got, want)
	}
	if got := selfLayerOptions(d, ptr(64), false); len(got) != 4 {
		t.Errorf("a grid's value adds an option: %v", got)
	}
	got = selfLayerOptions(d, ptr(0), false)
	if last := got[len(got)-1]; last != (choiceOption{"0", "none (≤ 0 positions, 0 of 10 layers)"}) {
		t.Errorf("a link's 0: %v", last)
	}
	// An SD-sized model whose photo edits take PnPInversion's layers.
	d.SelfLayers = append(d.SelfLayers, edit.SelfLayerGroup{Grid: edit.Size{Width: 32, Height: 32}, Layers: 2})
	d.PhotoSelfMaxTokens = 1024
	if got := selfLayerOptions(d, nil, true)[0].Text; got != "photo default: 32×32 and coarser (≤ 1024 positions, 12 of 12 layers)" {
		t.Errorf("photo default %q", got)
	}
	// Before the server said hello: the default and the spec's own value.
	got = selfLayerOptions(edit.Defaults{}, ptr(300), false)
	if !equalOptions(got, []choiceOption{{"default", "model default"}, {"300", "≤ 300 positions"}}) {
		t.Errorf("without the model's layers: %v", got)
	}
}

func equalOptions(a, b []choiceOption) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestSelfLayersHint(t *testing.T) {
	d := tinySelfDefaults()
	self := edit.Fraction(0.4)
	for _, c := range []struct {
		value *int
		self  edit.Window
		want  string
	}{
		{nil, self, "Keeps the source's shapes in 10 of the 10 self-attention layers"},
		{ptr(64), self, "Keeps the source's shapes in 7 of the 10"},
		{ptr(8), self, "No self-attention layer has this few positions"},
		{ptr(64), edit.Fraction(0), "Self-replace until is 0"},
	} {
		if got := selfLayersHint(d, c.value, &c.self, false); !strings.HasPrefix(got, c.want) {
			t.Errorf("%v, self %v: %q, want %q…", c.value, c.self, got, c.want)
		}
	}
	if got := selfLayersHint(edit.Defaults{}, nil, nil, false); !strings.HasPrefix(got, "The self-attention layers that keep") {
		t.Errorf("unknown model: %q", got)
	}
	if n := selfMaxTokensValue("64"); n == nil || *n != 64 || selfMaxTokensValue(menuDefault) != nil {
		t.Errorf("menu values: %v, %v", n, selfMaxTokensValue(menuDefault))
	}
	if selfMenuValue(nil) != menuDefault || selfMenuValue(ptr(64)) != "64" || tailMenuValue("") != "aligned" || tailMenuValue("reference") != "reference" {
		t.Errorf("menu values of specs: %q %q %q %q", selfMenuValue(nil), selfMenuValue(ptr(64)), tailMenuValue(""), tailMenuValue("reference"))
	}
}

// TestTailShift: the replace tail matters only for a swap of words with
// different token counts, and the hint names the edits that have one.
func TestTailShift(t *testing.T) {
	tok, err := clip.Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		target string
		choice align.Choice
		shift  int
	}{
		{"a blue circle", align.Auto, 0},
		{"a aquamarine circle", align.Auto, 1}, // aqu·amarine
		{"a aquamarine circle", align.ForceRefine, 0},
		{"a red circle on grass", align.Auto, 0},
	} {
		if got := CompareAs(tok, "a red circle", c.target, c.choice).TailShift; got != c.shift {
			t.Errorf("%q as %s: shift %d, want %d", c.target, c.choice, got, c.shift)
		}
	}
	if h := tailHint([]int{0, 0}); !strings.Contains(h, "no edit here has such a swap") {
		t.Errorf("no shift: %q", h)
	}
	if h := tailHint([]int{0, -1}); !strings.HasPrefix(h, "Edit 2 swaps words of different token counts") {
		t.Errorf("one shift: %q", h)
	}
	if h := tailHint([]int{1, 0, 2}); !strings.HasPrefix(h, "Edit 1, Edit 3 swap words") {
		t.Errorf("two shifts: %q", h)
	}
}

// TestCrossChangedField: the swapped words' field, right after the cross
// window's, shows what an empty field runs with (the model's default,
// else the cross window that applies) as its placeholder, and its hint
// says the window that applies: the field's, else that default.
func TestCrossChangedField(t *testing.T) {
	withDefault := *tinyDefaults
	withDefault.CrossChanged = ptr(edit.Fraction(0.4))
	for _, c := range []struct {
		name                string
		defaults            *edit.Defaults
		cross, crossChanged *edit.Window
		placeholder, part   string
	}{
		{"the model's default", &withDefault, nil, nil, "0.4 (default)", "the first 40\u00a0%"},
		{"the model's default, not the spec's cross", &withDefault, ptr(edit.Fraction(0.7)), nil, "0.4 (default)", "the first 40\u00a0%"},
		{"a value typed", &withDefault, nil, ptr(edit.Fraction(0.6)), "0.4 (default)", "the first 60\u00a0%"},
		{"no model default: the spec's cross", tinyDefaults, ptr(edit.Fraction(0.7)), nil, "0.7 (default)", "the first 70\u00a0%"},
		{"no model default: the model's cross", tinyDefaults, nil, nil, "0.8 (default)", "the first 80\u00a0%"},
		{"before the server said hello", nil, ptr(edit.Fraction(0.7)), nil, "model default", "the first part"},
	} {
		s := edit.Spec{Source: "a red circle", Targets: []string{"a blue circle"}, Cross: c.cross, CrossChanged: c.crossChanged}
		page := app.HTMLString(&Controls{Spec: s, Defaults: c.defaults})
		input, _ := renderedElement(t, page, "cross_changed")
		if !strings.Contains(input, `placeholder="`+c.placeholder+`"`) {
			t.Errorf("%s: %s, want the placeholder %q", c.name, input, c.placeholder)
		}
		_, hint := renderedElement(t, page, "cross_changed-hint")
		if want := "The swapped words keep the source's attention maps for " + c.part + " of the steps;"; !strings.HasPrefix(hint, want) {
			t.Errorf("%s: hint %q, want %q…", c.name, hint, want)
		}
		cross, changed, self := strings.Index(page, ` id="cross"`), strings.Index(page, ` id="cross_changed"`), strings.Index(page, ` id="self"`)
		if !(cross < changed && changed < self) {
			t.Errorf("%s: the field is not between cross and self (%d, %d, %d)", c.name, cross, changed, self)
		}
	} // Where no edit swaps a word, the hint says the window applies to none.
	page := app.HTMLString(&Controls{Spec: edit.Spec{Source: "a red circle", Targets: []string{"a red circle on grass"}, CrossChanged: ptr(edit.Fraction(0.4))},
		Defaults: &withDefault, NoWordSwap: true})
	if _, hint := renderedElement(t, page, "cross_changed-hint"); !strings.HasPrefix(hint, "No edit swaps a word") {
		t.Errorf("no word swapped: hint %q; want it to say the window applies to no word", hint)
	}
}

// renderedElement finds the element with the given id in a page that
// app.HTMLString rendered: its opening tag and its text, unescaped.
func renderedElement(t *testing.T, page, id string) (tag, text string) {
	t.Helper()
	at := strings.Index(page, ` id="`+id+`"`)
	if at < 0 {
		t.Fatalf("no element %q in\n%s", id, page)
	}
	start := strings.LastIndex(page[:at], "<")
	end := at + strings.Index(page[at:], ">") + 1
	text = page[end:]
	if i := strings.Index(text, "<"); i >= 0 {
		text = text[:i]
	}
	return page[start:end], html.UnescapeString(strings.TrimSpace(text))
}

// settingsMenu is the HTML of the settings menu id as the controls render
// it under the model defaults d, up to its closing tag.
func settingsMenu(d *edit.Defaults, id string) string {
	page := app.HTMLString(&Controls{Spec: edit.Spec{Source: "a red circle"}, Defaults: d})
	_, menu, _ := strings.Cut(page, `id="`+id+`"`)
	menu, _, _ = strings.Cut(menu, "</select>")
	return menu
}

// TestDecodeNormMenu: the decode menu shows a spec's decode_norm as the
// model default, the source, the source for swaps or each its own, and
// each choice sets it back
// the same way; the default option names the model's default once the
// server said it.
func TestDecodeNormMenu(t *testing.T) {
	for _, v := range []string{"", edit.DecodeNormSource, edit.DecodeNormSwaps, edit.DecodeNormOwn} {
		if got := menuSetting(menuValue(v)); got != v {
			t.Errorf("decode_norm %q comes back from the menu as %q", v, got)
		}
	}
	for _, c := range []struct {
		defaults *edit.Defaults
		want     string
	}{
		{nil, ">model default<"},
		{&edit.Defaults{DecodeNorm: edit.DecodeNormSource}, ">the source (default)<"},
		{&edit.Defaults{DecodeNorm: edit.DecodeNormSwaps}, ">the source, for swaps (default)<"},
		{&edit.Defaults{}, ">each its own (default)<"},
	} {
		if menu := settingsMenu(c.defaults, "decode-norm"); !strings.Contains(menu, c.want) {
			t.Errorf("defaults %+v: the decode menu's default option is not %q in %q", c.defaults, c.want, menu)
		}
	}
}

// TestBlendMenu: the blend menu shows a spec's blend_changed as the model
// default, on or off, and each choice sets it back the same way; the
// default option names the model's default once the server said it.
func TestBlendMenu(t *testing.T) {
	on, off := true, false
	for _, v := range []*bool{nil, &on, &off} {
		got := blendMenuSetting(blendMenuValue(v))
		if (got == nil) != (v == nil) || (got != nil && *got != *v) {
			t.Errorf("blend_changed %v comes back from the menu as %v", v, got)
		}
	}
	for _, c := range []struct {
		defaults *edit.Defaults
		want     string
	}{
		{nil, ">model default<"},
		{&edit.Defaults{BlendChanged: true}, ">on (default)<"},
		{&edit.Defaults{}, ">off (default)<"},
	} {
		if menu := settingsMenu(c.defaults, "blend-changed"); !strings.Contains(menu, c.want) {
			t.Errorf("defaults %+v: the blend menu's default option is not %q in %q", c.defaults, c.want, menu)
		}
	}
}

// TestBlendReweightedMenu: the menu of the blend of a reweight on its
// words shows a spec's blend_reweighted as the model default, on or off,
// and each choice sets it back the same way; the default option names the
// model's default once the server said it.
func TestBlendReweightedMenu(t *testing.T) {
	on, off := true, false
	for _, v := range []*bool{nil, &on, &off} {
		got := blendMenuSetting(blendMenuValue(v))
		if (got == nil) != (v == nil) || (got != nil && *got != *v) {
			t.Errorf("blend_reweighted %v comes back from the menu as %v", v, got)
		}
	}
	for _, c := range []struct {
		defaults *edit.Defaults
		want     string
	}{
		{nil, ">model default<"},
		{&edit.Defaults{BlendReweighted: true}, ">on (default)<"},
		{&edit.Defaults{}, ">off (default)<"},
		// The default follows blend_reweighted's, not blend_changed's.
		{&edit.Defaults{BlendChanged: true}, ">off (default)<"},
	} {
		if menu := settingsMenu(c.defaults, "blend-reweighted"); !strings.Contains(menu, c.want) {
			t.Errorf("defaults %+v: the reweight blend menu's default option is not %q in %q", c.defaults, c.want, menu)
		}
	}
}
