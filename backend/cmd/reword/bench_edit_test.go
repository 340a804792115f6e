package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"reword/backend/diffusion"
	"reword/backend/model"
	"reword/models/tiny/eval"
	"reword/models/tiny/scene"
	"reword/models/tiny/tinytest"
)

func TestBenchEditRejectsBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		say  string
	}{
		{[]string{"-seeds", "0"}, "--seeds is 0: want 1 to 100"},
		{[]string{"-colour", "-1"}, "--colour is -1"},
		{[]string{"-colour", "0", "-shape", "0", "-phrase", "0", "-reweight", "0"}, "nothing to edit"},
		{[]string{"-split", "half"}, `--split is "half": want report, tune or all`},
		{[]string{"-cross", "1.5"}, "--cross is 1.5"},
		{[]string{"-cross-changed", "NaN"}, "--cross-changed is NaN"},
		{[]string{"-block", "-1"}, "--block is -1"},
		{[]string{"-block", "1", "-split", "all"}, "--block 1 with --split all"},
		{[]string{"-norm", "-0.2"}, "--norm is -0.2: want a fraction of the steps"},
		{[]string{"-steps", "-2"}, "--steps is -2"},
		{[]string{"-self-max-tokens", "0"}, "--self-max-tokens 0: want a count of query positions from 1 to 1048576"},
		{[]string{"-self-max-tokens", "many"}, "self-max-tokens"},
		{[]string{"-blend-object", "-blend-changed"}, "--blend-object and --blend-changed"},
		{[]string{"-blend-object", "-blend-reweighted"}, "--blend-object and --blend-reweighted"},
		{[]string{"-decode-norm", "mine"}, `--decode-norm "mine": want one of own, source, swaps`},
		{[]string{"extra"}, "unexpected arguments"},
	} {
		var out, errb bytes.Buffer
		if code := run(append([]string{"bench", "edit"}, c.args...), &out, &errb); code != 2 || !strings.Contains(errb.String(), c.say) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", c.args, code, errb.String(), c.say)
		}
	}
}

// parsedEditJSON is the part of bench edit's JSON the tests read.
type parsedEditJSON struct {
	SelfMaxTokens   int              `json:"self_max_tokens"`
	KeepSourceText  bool             `json:"keep_source_text"`
	Norm            float64          `json:"norm"`
	BlendChanged    bool             `json:"blend_changed"`
	BlendReweighted bool             `json:"blend_reweighted"`
	BlendObject     bool             `json:"blend_object"`
	CrossChanged    float64          `json:"cross_changed"`
	SeedsPerEdit    int              `json:"seeds_per_edit"`
	Groups          []editGroupJSON  `json:"groups"`
	Edits           []editRecordJSON `json:"edits"`
}

func (p parsedEditJSON) group(row, set, method string, seed int) (editGroupJSON, bool) {
	for _, g := range p.Groups {
		if g.Row == row && g.Set == set && g.Method == method && (seed < 0 && g.Seed == nil || g.Seed != nil && *g.Seed == seed) {
			return g, true
		}
	}
	return editGroupJSON{}, false
}

// TestEditReportFromDrawnScenes builds records from drawn scenes whose
// scores are known, and checks the text and JSON reports' rows and sums.
func TestEditReportFromDrawnScenes(t *testing.T) {
	src := drawn(scene.PlainWhite, placed(redSquare))
	blue := redSquare
	blue.Colour = scene.Blue
	white := redSquare
	white.Colour = scene.White
	toBlue := colourSwap(setBare, redSquare, scene.Blue, scene.PlainGray)
	toWhite := colourSwap(setPosition, redSquare, scene.White, scene.PlainGray)
	var records []editRecord
	for seed := 0; seed < 2; seed++ {
		// Seed 0 keeps the background, seed 1 repaints it black.
		bg := scene.PlainWhite
		if seed == 1 {
			bg = scene.PlainBlack
		}
		for _, m := range editMethods {
			s := mustScore(t, toBlue, src, drawn(bg, placed(blue)))
			records = append(records, editRecord{edit: &toBlue, row: kindColour, method: m, seedIndex: seed, seed: uint64(10 + seed), score: s})
			s = mustScore(t, toWhite, src, drawn(scene.PlainGray, placed(white)))
			row := kindColour
			if mustChangeBackground(toWhite, s.srcBackground) {
				row = rowMustChange
			}
			records = append(records, editRecord{edit: &toWhite, row: row, method: m, seedIndex: seed, seed: uint64(20 + seed), score: s})
		}
	}
	run := editRun{model: "test", split: "report", steps: 50, guidance: 7.5, cross: 0.8, self: 0.4, seeds: 2, pairs: 2}

	var text bytes.Buffer
	if err := printEditReport(&text, run, records); err != nil {
		t.Fatal(err)
	}
	rows := tableRows(text.String())
	for _, want := range [][]string{
		{"kind", "method", "seed", "edits", "edit success", "mask IoU", "centroid shift px", "background PSNR dB", "object area, edit / source", "background changed", "another background", "broken", "shape kept", "colour kept", "position kept", "size kept"},
		{rowMustChange, methodP2P, "all", "2", "100 %"},
		{kindColour, methodP2P, "1", "1", "100 %"},
		{kindColour, methodBaseline, "all", "2", "100 %"},
		{kindColour, setBare, methodP2P, "2", "100 %"},
		{kindBoost, "baseline (= the source)", "all", "0", "–"},
		// By the colour swapped to: both seeds of the swap to blue, one
		// of which repainted the background.
		{"to", "method", "edits", "edit success", "mask IoU"},
		{"blue", methodP2P, "2", "100 %"},
		{"white", methodBaseline, "2", "100 %"},
	} {
		if !hasRow(rows, want) {
			t.Errorf("report lacks a row starting %q:\n%s", want, text.String())
		}
	}

	// Every row has its header's cells, and the area column is where its
	// header says: the swaps drawn at the source's size read about 1, a
	// row without edits reads "–".
	width, area := 0, -1
	for _, r := range rows {
		switch r[0] {
		case "kind", "to":
			width, area = len(r), slices.Index(r, "object area, edit / source")
			if area < 0 {
				t.Fatalf("a table without the object area column: %q", r)
			}
			continue
		}
		if len(r) != width {
			t.Errorf("row of %d cells under a header of %d: %q", len(r), width, r)
			continue
		}
		switch {
		case slices.Equal(r[:3], []string{kindColour, methodBaseline, "all"}):
			if v, err := strconv.ParseFloat(r[area], 64); err != nil || v < 0.95 || v > 1.05 {
				t.Errorf("colour swaps drawn at the source's size: object area %q, want about 1", r[area])
			}
		case slices.Equal(r[:3], []string{kindBoost, "baseline (= the source)", "all"}):
			if r[area] != "–" {
				t.Errorf("a row without edits: object area %q, want –", r[area])
			}
		}
	}

	var js bytes.Buffer
	if err := writeEditJSON(&js, run, records); err != nil {
		t.Fatal(err)
	}
	var got parsedEditJSON
	if err := json.Unmarshal(js.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Edits) != len(records) || got.SeedsPerEdit != 2 {
		t.Fatalf("%d edits, %d seeds per edit; want %d and 2", len(got.Edits), got.SeedsPerEdit, len(records))
	}
	// Replaced backgrounds: seed 1's blue swaps (white → black, both
	// methods) and every white swap (white → gray).
	replaced := 0
	for _, e := range got.Edits {
		if e.BackgroundReplaced {
			replaced++
		}
	}
	if replaced != 6 {
		t.Errorf("%d edits with another background; want 6", replaced)
	}
	all, ok := got.group(kindColour, "all", methodP2P, -1)
	if !ok || all.Edits != 2 || all.Succeeded != 2 || all.BackgroundChanged != 1 || all.BackgroundReplaced != 1 || all.Kept["position"].Kept != 2 {
		t.Errorf("colour swaps, all seeds: %+v", all)
	}
	if a := all.ObjectAreaRatio; a == nil || *a < 0.95 || *a > 1.05 {
		t.Errorf("colour swaps drawn at the source's size: object area ratio %v, want about 1", a)
	}
	for _, e := range got.Edits {
		if e.ObjectAreaRatio == nil {
			t.Errorf("%s → %s (%s): no object area ratio", e.Source, e.Target, e.Method)
		}
	}
	for seed, changed := range []int{0, 1} {
		g, ok := got.group(kindColour, "all", methodP2P, seed)
		if !ok || g.Edits != 1 || g.BackgroundChanged != changed || g.BackgroundReplaced != changed {
			t.Errorf("colour swaps, seed %d: %+v; want 1 edit, %d changed and replaced backgrounds", seed, g, changed)
		}
	}
	if g, ok := got.group(rowMustChange, setPosition, methodBaseline, -1); !ok || g.Edits != 2 {
		t.Errorf("must-change row of the position set: %+v", g)
	}
	if g, ok := got.group(rowSummary, "all", methodP2P, -1); !ok || g.Edits != 2 {
		t.Errorf("the summary must leave the must-change swaps out: %+v", g)
	}
}

// TestEditReportWithRefineSwaps: -refine-swaps adds a method that has rows
// for the swaps, the added phrases and the summary, and none for the
// reweights, which it leaves out; the default methods' rows stay as they
// were.
// reportFixture is a red square on white, the same square turned blue, and
// rec, which scores an edit's result against the red square as method.
func reportFixture(t *testing.T) (src, swapped diffusion.Image, blue scene.Object, rec func(e *benchEdit, method string, res diffusion.Image) editRecord) {
	src = drawn(scene.PlainWhite, placed(redSquare))
	blue = redSquare
	blue.Colour = scene.Blue
	rec = func(e *benchEdit, method string, res diffusion.Image) editRecord {
		return editRecord{edit: e, row: e.kind, method: method, seed: 7, score: mustScore(t, *e, src, res)}
	}
	return src, drawn(scene.PlainWhite, placed(blue)), blue, rec
}

func TestEditReportWithRefineSwaps(t *testing.T) {
	src, swapped, blue, rec := reportFixture(t)
	toBlue := colourSwap(setBare, redSquare, scene.Blue, scene.PlainGray)
	phrase := addedPhrase(setBare, redSquare, scene.Stripes)
	boost := colourReweight(setBare, redSquare, scene.PlainWhite, 2)
	moved := blue
	moved.Position = scene.Right
	striped := drawn(scene.Stripes, placed(redSquare))
	records := []editRecord{
		rec(&toBlue, methodP2P, swapped), rec(&toBlue, methodP2PRefine, drawn(scene.PlainWhite, placed(moved))), rec(&toBlue, methodBaseline, swapped),
		rec(&phrase, methodP2P, striped), rec(&phrase, methodP2PRefine, striped), rec(&phrase, methodBaseline, src),
		rec(&boost, methodP2P, src), rec(&boost, methodBaseline, src),
	}
	run := editRun{model: "test", split: "report", steps: 50, guidance: 4, cross: 0.8, self: 0.4, seeds: 1, pairs: 3,
		methods: []string{methodP2P, methodP2PRefine, methodBaseline}}
	var text bytes.Buffer
	if err := printEditReport(&text, run, records); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "3 prompt pairs × 1 seeds = 3 edits × 3 methods") || !strings.Contains(text.String(), "as PIE-Bench and PnPInversion run every edit") {
		t.Errorf("header:\n%s", text.String())
	}
	rows := tableRows(text.String())
	for _, want := range [][]string{
		{kindColour, methodP2P, "all", "1", "100 %"},
		{kindColour, methodP2PRefine, "all", "1", "100 %"},
		{kindRefine, methodP2PRefine, "all", "1", "100 %"},
		{rowSummary, methodP2PRefine, "all", "2", "100 %"},
		{kindBoost, methodP2P, "all", "1"},
		{kindColour, setBare, methodP2PRefine, "1"},
	} {
		if !hasRow(rows, want) {
			t.Errorf("report lacks a row starting %q:\n%s", want, text.String())
		}
	}
	for _, row := range []string{kindBoost, kindSuppress, kindShape} {
		if hasRow(rows, []string{row, methodP2PRefine}) {
			t.Errorf("a %s row for %s, which did not run it", methodP2PRefine, row)
		}
	}
	var js bytes.Buffer
	if err := writeEditJSON(&js, run, records); err != nil {
		t.Fatal(err)
	}
	var got struct {
		parsedEditJSON
		Methods []string `json:"methods"`
	}
	if err := json.Unmarshal(js.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Methods, run.methods) || len(got.Edits) != len(records) {
		t.Errorf("methods %q, %d edits", got.Methods, len(got.Edits))
	}
	if g, ok := got.group(kindColour, "all", methodP2PRefine, -1); !ok || g.Kept["position"].Kept != 0 || g.Kept["position"].Judged != 1 {
		t.Errorf("refined colour swap group: %+v", g)
	}
}

// TestEditReportWithDrawnEdits: -drawn's method has rows where it ran (the
// word swaps and the summary) and none for the reweights, and the header
// says what it is.
func TestEditReportWithDrawnEdits(t *testing.T) {
	src, swapped, _, rec := reportFixture(t)
	toBlue := colourSwap(setBare, redSquare, scene.Blue, scene.PlainWhite)
	boost := colourReweight(setBare, redSquare, scene.PlainWhite, 2)
	records := []editRecord{
		rec(&toBlue, methodP2P, src), rec(&toBlue, methodBaseline, swapped), rec(&toBlue, methodDrawn, swapped),
		rec(&boost, methodP2P, src), rec(&boost, methodBaseline, src),
	}
	run := editRun{model: "test", split: "report", steps: 50, guidance: 4, cross: 0.8, self: 0.4, seeds: 1, pairs: 2,
		methods: []string{methodP2P, methodBaseline, methodDrawn}}
	var text bytes.Buffer
	if err := printEditReport(&text, run, records); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "what a perfect edit scores through this decoder and evaluator") {
		t.Errorf("the header does not say what a drawn edit is:\n%s", text.String())
	}
	rows := tableRows(text.String())
	for _, want := range [][]string{
		{kindColour, methodP2P, "all", "1", "0 %"},
		{kindColour, methodDrawn, "all", "1", "100 %", "1.000"},
		{rowSummary, methodDrawn, "all", "1", "100 %"},
	} {
		if !hasRow(rows, want) {
			t.Errorf("report lacks a row starting %q:\n%s", want, text.String())
		}
	}
	for _, row := range []string{kindBoost, kindSuppress, kindShape} {
		if hasRow(rows, []string{row, methodDrawn}) {
			t.Errorf("a %s row for %s, which did not run it", methodDrawn, row)
		}
	}
}

// TestBenchCommandsOnTinyModel runs bench edit and bench model on the
// committed model with a few short edits and images.
func TestBenchCommandsOnTinyModel(t *testing.T) {
	dir := tinytest.Private(t)
	t.Run("edit", func(t *testing.T) {
		var out, errb bytes.Buffer
		args := []string{"bench", "edit", "-model", dir, "-threads", "1", "-json", "-steps", "4",
			"-colour", "1", "-shape", "0", "-phrase", "0", "-reweight", "1", "-seeds", "2", "-refine-swaps"}
		if code := run(args, &out, &errb); code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		var got parsedEditJSON
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatalf("%v in %s", err, out.String())
		}
		// 1 colour swap and 1 prompt reweighted each way, 2 seeds, 2
		// methods, and the colour swap refined.
		if len(got.Edits) != 3*2*2+2 {
			t.Fatalf("%d edits, want 14", len(got.Edits))
		}
		refined := 0
		for _, e := range got.Edits {
			if e.Method == methodP2PRefine {
				refined++
				if e.Kind != kindColour {
					t.Errorf("a %s edit refined: %+v", e.Kind, e)
				}
			}
		}
		if refined != 2 {
			t.Errorf("%d refined edits, want the colour swap at 2 seeds", refined)
		}
		for _, e := range got.Edits {
			if e.Kind == kindSuppress && e.Method == methodBaseline && (e.MaskIoU != 1 || e.BackgroundPSNRDB != 60) {
				t.Errorf("a reweight's baseline is the source itself: %+v", e)
			}
		}
		seeds := map[uint64]bool{}
		for _, e := range got.Edits {
			if e.Kind == kindColour {
				seeds[e.Seed] = true
			}
		}
		if len(seeds) != 2 {
			t.Errorf("the colour swap ran at seeds %v, want 2 of them", seeds)
		}
		colours := 0
		for _, row := range []string{kindColour, rowMustChange} {
			if g, ok := got.group(row, "all", methodP2P, -1); ok {
				colours += g.Edits
			}
		}
		if colours != 2 {
			t.Errorf("%d colour swaps in the groups, want 2", colours)
		}
	})
	t.Run("self-max-tokens", func(t *testing.T) {
		// One colour swap with self-replace over every step, in the 4×4
		// layers only and with the model's default (every layer up to
		// 16×16): the flag must reach the run and change the edit.
		only4x4, only4x4Edit := oneColourSwap(t, dir, "-self", "1", "-self-max-tokens", "16")
		def, defEdit := oneColourSwap(t, dir, "-self", "1")
		if only4x4.SelfMaxTokens != 16 || def.SelfMaxTokens != 256 { // 256: the tiny model's 16×16 layers and coarser
			t.Errorf("the reports say self_max_tokens %d and %d, want 16 and 256", only4x4.SelfMaxTokens, def.SelfMaxTokens)
		}
		if sameScores(only4x4Edit, defEdit) {
			t.Errorf("self-replace in the 4×4 layers only scored as in every layer (%+v): the limit did not reach the run", only4x4Edit)
		}
	})
	t.Run("keep-source-text", func(t *testing.T) {
		// Cross-replace off, so that the text states alone steer the
		// target: the flag must reach the run and change the edit.
		kept, keptEdit := oneColourSwap(t, dir, "-cross", "0", "-keep-source-text")
		own, ownEdit := oneColourSwap(t, dir, "-cross", "0")
		if !kept.KeepSourceText || own.KeepSourceText {
			t.Errorf("the reports say keep_source_text %v with the flag and %v without", kept.KeepSourceText, own.KeepSourceText)
		}
		if sameScores(keptEdit, ownEdit) {
			t.Errorf("the edit with the source's text states scored as without them (%+v): the flag did not reach the run", keptEdit)
		}
	})
	t.Run("norm", func(t *testing.T) {
		// The source's GroupNorm means over every step against none:
		// the flag must reach the run and change the edit. Without it the
		// run takes the model's default, and says so.
		shared, sharedEdit := oneColourSwap(t, dir, "-norm", "1")
		own, ownEdit := oneColourSwap(t, dir, "-norm", "0")
		if shared.Norm != 1 || own.Norm != 0 {
			t.Errorf("the reports say norm %v with -norm 1 and %v with -norm 0", shared.Norm, own.Norm)
		}
		m, err := model.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		if plain, _ := oneColourSwap(t, dir); plain.Norm != m.Defaults.Norm {
			t.Errorf("without -norm the report says norm %v; the model's default is %v", plain.Norm, m.Defaults.Norm)
		}
		if sameScores(sharedEdit, ownEdit) {
			t.Errorf("the edit with the source's GroupNorm means scored as without them (%+v): the flag did not reach the run", sharedEdit)
		}
	})
	t.Run("blend-changed", func(t *testing.T) {
		// On and off whatever the model's default; without the flag the
		// run takes the model's default, and says so.
		blended, blendedEdit := oneColourSwap(t, dir, "-blend-changed")
		plain, plainEdit := oneColourSwap(t, dir, "-blend-changed=false")
		if !blended.BlendChanged || plain.BlendChanged {
			t.Errorf("the reports say blend_changed %v with -blend-changed and %v with -blend-changed=false", blended.BlendChanged, plain.BlendChanged)
		}
		if sameScores(blendedEdit, plainEdit) {
			t.Errorf("the edit blended on its swapped words scored as without the blend (%+v): the flag did not reach the run", blendedEdit)
		}
		m, err := model.Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		if def, _ := oneColourSwap(t, dir); def.BlendChanged != m.Defaults.BlendChanged {
			t.Errorf("without -blend-changed the report says blend_changed %v; the model's default is %v", def.BlendChanged, m.Defaults.BlendChanged)
		}
		// Blended on the object's word instead: another region, so
		// another edit than either; the other kinds are not blended,
		// whatever the model's default.
		object, objectEdit := oneColourSwap(t, dir, "-blend-object")
		if !object.BlendObject || blended.BlendObject {
			t.Errorf("the reports say blend_object %v with -blend-object and %v without", object.BlendObject, blended.BlendObject)
		}
		if object.BlendChanged {
			t.Error("with -blend-object alone the report says blend_changed true; want false (it blends the swaps on their object words and nothing else)")
		}
		if sameScores(objectEdit, plainEdit) || sameScores(objectEdit, blendedEdit) {
			t.Errorf("the edit blended on its object word (%+v) scored as unblended or as blended on its colour words", objectEdit)
		}
	})
	t.Run("blend-reweighted", func(t *testing.T) {
		// On and off whatever the model's default, reaching the
		// reweights' runs; -blend-object blends no reweight.
		blended, blendedEdit := oneReweight(t, dir, "-blend-reweighted")
		plain, plainEdit := oneReweight(t, dir, "-blend-reweighted=false")
		if !blended.BlendReweighted || plain.BlendReweighted {
			t.Errorf("the reports say blend_reweighted %v with -blend-reweighted and %v with -blend-reweighted=false", blended.BlendReweighted, plain.BlendReweighted)
		}
		if sameScores(blendedEdit, plainEdit) {
			t.Errorf("the reweight blended on its word scored as without the blend (%+v): the flag did not reach the run", blendedEdit)
		}
		if object, _ := oneReweight(t, dir, "-blend-object"); object.BlendReweighted {
			t.Error("with -blend-object the report says blend_reweighted true; want false")
		}
	})
	t.Run("cross-changed", func(t *testing.T) {
		// Every token's maps over every step, but the swapped word's
		// never: the flag must reach the run (the spec's cross_changed)
		// and change the edit.
		apart, apartEdit := oneColourSwap(t, dir, "-cross", "1", "-cross-changed", "0")
		plain, plainEdit := oneColourSwap(t, dir, "-cross", "1", "-cross-changed", "1")
		if apart.CrossChanged != 0 || plain.CrossChanged != 1 {
			t.Errorf("the reports say cross_changed %v with -cross-changed 0 and %v with 1", apart.CrossChanged, plain.CrossChanged)
		}
		if sameScores(apartEdit, plainEdit) {
			t.Errorf("the edit whose swapped word kept its own maps scored as with the source's (%+v): the flag did not reach the run", apartEdit)
		}
	})
	t.Run("drawn", func(t *testing.T) {
		// -drawn scores each word swap drawn exactly through the VAE: a
		// fourth method on the swaps alone, with a source of its own, that
		// swaps the word and keeps the object where it was and the
		// background as it was.
		images := filepath.Join(t.TempDir(), "images")
		args := []string{"bench", "edit", "-model", dir, "-threads", "1", "-json", "-steps", "2",
			"-colour", "2", "-shape", "2", "-phrase", "0", "-reweight", "1", "-seeds", "2", "-drawn", "-images", images}
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		var got struct {
			parsedEditJSON
			Methods []string `json:"methods"`
		}
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatalf("%v in %s", err, out.String())
		}
		if !slices.Equal(got.Methods, []string{methodP2P, methodBaseline, methodDrawn, methodSpliced}) {
			t.Errorf("methods %q", got.Methods)
		}
		var drawnEdits, splicedEdits []editRecordJSON
		for _, e := range got.Edits {
			switch e.Method {
			case methodDrawn:
				drawnEdits = append(drawnEdits, e)
			case methodSpliced:
				splicedEdits = append(splicedEdits, e)
			}
		}
		if len(splicedEdits) != len(drawnEdits) {
			t.Errorf("%d spliced edits for %d drawn ones", len(splicedEdits), len(drawnEdits))
		}
		for _, e := range splicedEdits {
			// The spliced latent holds the swapped object's cells, so the
			// object is there, where it was; what the decoder does to the
			// background around it is what the method measures.
			if e.Broken || e.CentroidShiftPx == nil || *e.CentroidShiftPx > 1 {
				t.Errorf("a spliced swap lost its object or moved it: %+v", e)
			}
		}
		if len(drawnEdits) != 8 {
			t.Fatalf("%d drawn edits, want the 2 colour and 2 shape swaps at 2 seeds each", len(drawnEdits))
		}
		for _, e := range drawnEdits {
			if e.Kind != kindColour && e.Kind != kindShape {
				t.Errorf("a %s drawn: %+v", e.Kind, e)
				continue
			}
			if !e.Success || e.Broken || e.BackgroundChanged || e.BackgroundReplaced || e.CentroidShiftPx == nil || *e.CentroidShiftPx > 1 {
				t.Errorf("a drawn swap is a perfect edit through the VAE; got %+v", e)
			}
			if e.Kind == kindColour && e.MaskIoU < 0.8 {
				t.Errorf("a drawn colour swap keeps its object's pixels; mask IoU %.3f: %+v", e.MaskIoU, e)
			}
			// Its objects' areas then differ by at most the IoU's share
			// (IoU ≤ the smaller area over the larger).
			if a := e.ObjectAreaRatio; e.Kind == kindColour && (a == nil || *a < e.MaskIoU || *a > 1/e.MaskIoU) {
				t.Errorf("a drawn colour swap at mask IoU %.3f has object area ratio %v", e.MaskIoU, a)
			}
			for _, at := range []string{"position", "size"} {
				if kept, ok := e.Kept[at]; !ok || !kept {
					t.Errorf("a drawn swap keeps %s: %+v", at, e)
				}
			}
		}
		index, err := os.ReadFile(filepath.Join(images, "index.tsv"))
		if err != nil {
			t.Fatal(err)
		}
		var drawnRows int
		for _, line := range strings.Split(strings.TrimSpace(string(index)), "\n")[1:] {
			f := strings.Split(line, "\t")
			if !drawnMethod(f[7]) {
				continue
			}
			if f[7] == methodDrawn {
				drawnRows++
			}
			if !strings.HasSuffix(f[0], "-"+methodFileNames[f[7]]+".png") || !strings.HasSuffix(f[1], "-drawn-source.png") {
				t.Errorf("a %s edit's files: %q", f[7], f[:2])
			}
			src, res := readPNG(t, filepath.Join(images, f[1])), readPNG(t, filepath.Join(images, f[0]))
			if src.Bounds() != res.Bounds() {
				t.Errorf("%s and %s differ in size", f[1], f[0])
			}
		}
		if drawnRows != len(drawnEdits) {
			t.Errorf("index.tsv has %d drawn rows for %d drawn edits", drawnRows, len(drawnEdits))
		}
	})
	t.Run("edit, every image written", func(t *testing.T) {
		images := filepath.Join(t.TempDir(), "images")
		args := []string{"bench", "edit", "-model", dir, "-threads", "1", "-json", "-steps", "2",
			"-colour", "1", "-shape", "0", "-phrase", "0", "-reweight", "1", "-seeds", "1", "-images", images}
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		var got parsedEditJSON
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatalf("%v in %s", err, out.String())
		}
		index, err := os.ReadFile(filepath.Join(images, "index.tsv"))
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(index)), "\n")
		if lines[0] != strings.Join(editImageColumns, "\t") || len(lines)-1 != len(got.Edits) {
			t.Fatalf("index.tsv: header %q and %d rows for %d scored edits", lines[0], len(lines)-1, len(got.Edits))
		}
		yes := map[bool]string{true: "yes", false: "no"}
		pngs := map[string]bool{}
		for _, e := range got.Edits {
			// The row of the same edit, seed and method says what the
			// report scored, and names files that hold images.
			var row []string
			for _, l := range lines[1:] {
				c := strings.Split(l, "\t")
				if c[2] == e.Kind && c[4] == e.Source && c[5] == e.Target && c[6] == strconv.FormatUint(e.Seed, 10) && c[7] == e.Method {
					row = c
				}
			}
			if row == nil {
				t.Fatalf("no index row for %s %s %q → %q seed %d", e.Kind, e.Method, e.Source, e.Target, e.Seed)
			}
			if row[8] != yes[e.Success] || row[9] != fmt.Sprintf("%.3f", e.MaskIoU) || row[11] != yes[e.BackgroundChanged] ||
				row[12] != e.SourceBackground || row[13] != e.EditBackground || row[14] != yes[e.Broken] || row[15] != yes[e.BackgroundChangedBeyondEdge] {
				t.Errorf("index row %q disagrees with the report's %+v", row, e)
			}
			for _, file := range row[:2] {
				img := readPNG(t, filepath.Join(images, file))
				pngs[file] = true
				if file == row[0] {
					r, err := eval.Analyze(img)
					if err != nil {
						t.Fatal(err)
					}
					if broken := len(r.Objects) == 0; broken != e.Broken {
						t.Errorf("%s: the report says broken %v, the evaluator finds %d objects in the file", file, e.Broken, len(r.Objects))
					}
				}
			}
		}
		// A colour swap's source, edit and baseline; each reweight's source
		// and edit (its baseline is the source).
		if len(pngs) != 3+2+2 {
			t.Errorf("%d image files named in the index, want 7: %v", len(pngs), pngs)
		}
		errb.Reset()
		if code := run(args, &out, &errb); code != 1 || !strings.Contains(errb.String(), "already holds an index.tsv") {
			t.Errorf("a second run into %s: exit %d, %s; want a refusal", images, code, errb.String())
		}
	})
	t.Run("model", func(t *testing.T) {
		var out, errb bytes.Buffer
		args := []string{"bench", "model", "-model", dir, "-threads", "1", "-prompts", "2", "-seeds", "2", "-steps", "4"}
		if code := run(args, &out, &errb); code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		for _, want := range []string{"background", "generated, seed 0", "generated, seed 1", "generated   ", "VAE round trip",
			"shape kept, by shape and size", "size unnamed", "object colour, by colour", "object size, by size", "object position, by position", "named background, by background"} {
			if !strings.Contains(out.String(), want) {
				t.Errorf("output lacks %q:\n%s", want, out.String())
			}
		}
		// 2 prompts × 2 seeds in the generated shape and colour tables, 2
		// drawn scenes in the VAE's, in the size table each image whose
		// prompt names a size, and in the position tables (one per seed,
		// then all seeds) each image whose prompt names a position twice:
		// the counts in parentheses add up to that.
		namedCount := func(attr string) int {
			named := regexp.MustCompile(attr + `: (\d+) of (\d+)`).FindStringSubmatch(out.String())
			if named == nil {
				t.Fatalf("output does not say how many prompts name a %s:\n%s", attr, out.String())
			}
			n, _ := strconv.Atoi(named[1])
			return n
		}
		sizeNamed, positionNamed := namedCount("size"), namedCount("position")
		_, tables, _ := strings.Cut(out.String(), "shape kept, by shape and size:")
		gen, vae, _ := strings.Cut(tables, "VAE round trip (drawn)")
		vae, colours, _ := strings.Cut(vae, "object colour, by colour:")
		colours, sizes, _ := strings.Cut(colours, "object size, by size:")
		sizes, positions, _ := strings.Cut(sizes, "object position, by position:")
		positions, _, _ = strings.Cut(positions, "named background")
		for _, title := range []string{"generated, seed 0", "generated, seed 1"} {
			if !strings.Contains(positions, title) {
				t.Errorf("the position tables lack %q's:\n%s", title, positions)
			}
		}
		for _, c := range []struct {
			name, table string
			want        int
		}{{"generated shape", gen, 4}, {"VAE shape", vae, 2}, {"colour", colours, 4}, {"size", sizes, sizeNamed},
			{"position", positions, 2 * positionNamed}} {
			n := 0
			for _, m := range regexp.MustCompile(`\((\d+)\)`).FindAllStringSubmatch(c.table, -1) {
				k, _ := strconv.Atoi(m[1])
				n += k
			}
			if n != c.want {
				t.Errorf("%s table counts %d images, want %d:\n%s", c.name, n, c.want, c.table)
			}
		}
	})
	t.Run("model, each prompt its own seeds", func(t *testing.T) {
		seeds := func(extra ...string) (string, [][2]string) {
			var out, errb bytes.Buffer
			args := append([]string{"bench", "model", "-model", dir, "-threads", "1", "-prompts", "2", "-seeds", "2", "-steps", "2"}, extra...)
			if code := run(args, &out, &errb); code != 0 {
				t.Fatalf("%v: exit %d: %s", extra, code, errb.String())
			}
			var got [][2]string // (prompt, seed) of each image, in order
			for _, m := range regexp.MustCompile(`grid \d+: (.+) \(seed (\d+)\)`).FindAllStringSubmatch(errb.String(), -1) {
				got = append(got, [2]string{m[1], m[2]})
			}
			if len(got) != 4 {
				t.Fatalf("%v: %d generated images in the progress, want 2 prompts × 2 seeds:\n%s", extra, len(got), errb.String())
			}
			return out.String(), got
		}
		out, own := seeds("-prompt-seeds")
		if !strings.Contains(out, "each prompt's own") {
			t.Errorf("the report does not say each prompt had its own seeds:\n%s", out)
		}
		sharedOut, shared := seeds()
		if !strings.Contains(sharedOut, "seeds 0..1, shared by every prompt") {
			t.Errorf("the default report does not say its seeds are shared:\n%s", sharedOut)
		}
		for i, img := range own {
			prompt, k := i%2, i/2 // seed by seed, prompt by prompt
			if want := strconv.FormatUint(promptSeed(prompt, k), 10); img[1] != want {
				t.Errorf("image %d (%q) used seed %s, want prompt %d's seed %d, %s", i, img[0], img[1], prompt, k, want)
			}
			if want := strconv.Itoa(k); shared[i][1] != want {
				t.Errorf("shared seeds: image %d used seed %s, want %s", i, shared[i][1], want)
			}
		}
	})
	t.Run("model, every image written", func(t *testing.T) {
		images := filepath.Join(t.TempDir(), "images")
		args := []string{"bench", "model", "-model", dir, "-threads", "1", "-prompts", "2", "-seeds", "2", "-steps", "2", "-prompt-seeds", "-images", images}
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 0 {
			t.Fatalf("exit %d: %s", code, errb.String())
		}
		index, err := os.ReadFile(filepath.Join(images, "index.tsv"))
		if err != nil {
			t.Fatal(err)
		}
		rows := strings.Split(strings.TrimSpace(string(index)), "\n")
		if len(rows) != 5 || rows[0] != strings.Join(modelImageColumns, "\t") {
			t.Fatalf("index.tsv: want the header and 4 rows, got\n%s", index)
		}
		prompts := scene.EvalPrompts(2, 1)
		for i, row := range rows[1:] {
			prompt, k := i%2, i/2
			cols := strings.Split(row, "\t")
			file := fmt.Sprintf("p%03d-k%d.png", prompt, k)
			if len(cols) != len(modelImageColumns) || cols[0] != file || cols[1] != prompts[prompt].Text || cols[2] != strconv.FormatUint(promptSeed(prompt, k), 10) {
				t.Errorf("index row %d = %q, want %s, %q, prompt %d's seed %d", i, row, file, prompts[prompt].Text, prompt, k)
			}
			r, err := eval.Analyze(readPNG(t, filepath.Join(images, file)))
			if err != nil {
				t.Fatal(err)
			}
			// What the index says is what the evaluator finds in the file.
			shape := "-"
			if len(r.Objects) > 0 {
				shape = r.Objects[0].Shape.String()
			}
			if cols[3] != shape {
				t.Errorf("%s: index says shape %s, the evaluator finds %s in the file", file, cols[3], shape)
			}
			// The right columns are the evaluator's verdicts against what
			// the prompt names, "-" where it names nothing.
			v, err := eval.CheckSingle(prompts[prompt], r)
			if err != nil {
				t.Fatal(err)
			}
			m := prompts[prompt].Mentions[0]
			want := []string{yesNo(v.Colour), yesNo(v.Shape), "-", "-", "-"}
			if m.NamesSize {
				want[2] = yesNo(v.Size)
			}
			if m.NamesPosition {
				want[3] = yesNo(v.Position)
			}
			if prompts[prompt].NamesBackground {
				bg, err := eval.Background(readPNG(t, filepath.Join(images, file)))
				if err != nil {
					t.Fatal(err)
				}
				want[4] = yesNo(bg == prompts[prompt].Background)
			}
			if got := cols[8:]; strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("%s: index's right columns %q, the evaluator's verdicts %q", file, got, want)
			}
		}
		// A second run into the same folder would overwrite the first's images.
		errb.Reset()
		if code := run(args, &out, &errb); code != 1 || !strings.Contains(errb.String(), "already holds an index.tsv") {
			t.Errorf("a second run into %s: exit %d, %s; want a refusal", images, code, errb.String())
		}
	})
}

// readPNG decodes the PNG file at path.
func readPNG(t *testing.T, path string) image.Image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return img
}

// tableRows splits a Markdown-style table's lines into trimmed cells.
func tableRows(text string) [][]string {
	var rows [][]string
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "|") {
			continue
		}
		var cells []string
		for _, c := range strings.Split(strings.Trim(line, "|"), "|") {
			cells = append(cells, strings.TrimSpace(c))
		}
		rows = append(rows, cells)
	}
	return rows
}

// hasRow reports whether a row starts with the cells of prefix.
func hasRow(rows [][]string, prefix []string) bool {
	for _, r := range rows {
		if len(r) >= len(prefix) && slices.Equal(r[:len(prefix)], prefix) {
			return true
		}
	}
	return false
}

// oneColourSwap runs bench edit on one colour swap at one seed and 4 steps
// with extra flags, and returns the JSON report and its Prompt-to-Prompt
// edit.
func oneColourSwap(t *testing.T, dir string, extra ...string) (parsedEditJSON, editRecordJSON) {
	t.Helper()
	args := append([]string{"bench", "edit", "-model", dir, "-threads", "1", "-json", "-steps", "4",
		"-colour", "1", "-shape", "0", "-phrase", "0", "-reweight", "0", "-seeds", "1"}, extra...)
	var out, errb bytes.Buffer
	if code := run(args, &out, &errb); code != 0 {
		t.Fatalf("%q: exit %d: %s", extra, code, errb.String())
	}
	var got parsedEditJSON
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v in %s", err, out.String())
	}
	for _, e := range got.Edits {
		if e.Method == methodP2P {
			return got, e
		}
	}
	t.Fatalf("%q: no Prompt-to-Prompt edit in %s", extra, out.String())
	return got, editRecordJSON{}
}

// oneReweight is oneColourSwap for one reweight of each factor instead of
// the colour swap: the first Prompt-to-Prompt edit is the reweight by 2.
func oneReweight(t *testing.T, dir string, extra ...string) (parsedEditJSON, editRecordJSON) {
	t.Helper()
	return oneColourSwap(t, dir, append([]string{"-colour", "0", "-reweight", "1"}, extra...)...)
}

// sameScores reports whether two edits scored alike: a flag that changes
// the edit changes its mask or its background.
func sameScores(a, b editRecordJSON) bool {
	return a.MaskIoU == b.MaskIoU && a.BackgroundPSNRDB == b.BackgroundPSNRDB
}

// objectCells marks every latent cell any masked pixel falls in, the union
// over the masks, and refuses a grid that does not tile the scenes.
func TestObjectCells(t *testing.T) {
	const n = scene.ImageSize
	a, b := make([]bool, n*n), make([]bool, n*n)
	a[0] = true             // cell (0, 0)
	a[5*n+4] = true         // pixel (4, 5): cell (1, 1) at 4 px per cell
	b[(n-1)*n+(n-1)] = true // the last pixel: the last cell
	cells, err := objectCells(16, 16, a, b)
	if err != nil {
		t.Fatal(err)
	}
	var set []int
	for i, on := range cells {
		if on {
			set = append(set, i)
		}
	}
	if want := []int{0, 17, 255}; !slices.Equal(set, want) {
		t.Errorf("cells %v, want %v", set, want)
	}
	if _, err := objectCells(12, 16, a); err == nil {
		t.Error("a 12-wide latent was accepted for 64-pixel scenes")
	}
}
