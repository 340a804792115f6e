package main

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	"reword/models/tiny/scene"
	"reword/shared/edit"
)

// editRun is what the report describes besides the records.
type editRun struct {
	model, split string
	block        int // -block
	steps        int
	guidance     float64
	cross, self  float64
	selfMax      int     // self_max_tokens
	norm         float64 // the norm window's end (0: none)
	keepText     bool
	decodeNorm   string // -decode-norm ("": own)
	blendChanged bool
	// blendReweighted is whether the reweights blended on their words.
	blendReweighted bool
	blendObject     bool
	// crossChanged is the cross window of the words each word swap
	// changes (cross when neither -cross-changed nor the model sets one).
	crossChanged float64
	seeds        int
	pairs        int
	seconds      float64
	// methods are the methods run, in report order (editMethods when
	// empty).
	methods []string
}

// methodList is the run's methods in report order.
func (run editRun) methodList() []string {
	if len(run.methods) == 0 {
		return editMethods
	}
	return run.methods
}

// shown reports whether the report has a row for method in row: every
// row has the default run's methods, an extra method only the rows it ran.
func shown(row, method string, records []editRecord) bool {
	if method == methodP2P || method == methodBaseline {
		return true
	}
	return slices.ContainsFunc(records, func(r editRecord) bool { return inRow(row, r.row) && r.method == method })
}

// methodLabel names the method in a row; a reweight's baseline is the
// source image itself (the target prompt alone is the source prompt), so the
// table says so.
func methodLabel(row, method string) string {
	if method == methodBaseline && (row == kindBoost || row == kindSuppress) {
		return "baseline (= the source)"
	}
	return method
}

// decodeAndBlendNote describes, for a report's settings line, how a run's
// edits decode (decode_norm) and whether they blend on their changed words
// and its reweights on their words: ", …" for each that is on, "" for none.
func decodeAndBlendNote(decodeNorm string, blendChanged, blendReweighted bool) string {
	note := ""
	switch decodeNorm {
	case edit.DecodeNormSource:
		note += ", decoded with the source's GroupNorm statistics"
	case edit.DecodeNormSwaps:
		note += ", swaps and reweights decoded with the source's GroupNorm statistics"
	}
	if blendChanged {
		note += ", local blend on the changed words"
	}
	if blendReweighted {
		note += ", reweights blended on their words"
	}
	return note
}

func printEditReport(w io.Writer, run editRun, records []editRecord) error {
	methods := run.methodList()
	edits := tallyOf(records, func(r editRecord) bool { return r.method == methodP2P }).n
	keep := ""
	if run.norm > 0 {
		keep += fmt.Sprintf(", norm %.2f", run.norm)
	}
	if run.keepText {
		keep += ", keep_source_text"
	}
	keep += decodeAndBlendNote(run.decodeNorm, run.blendChanged, run.blendReweighted)
	if run.blendObject {
		keep += ", local blend on the swaps' object words"
	}
	split := run.split
	if run.block > 0 {
		split += fmt.Sprintf(" (block %d)", run.block)
	}
	fmt.Fprintf(w, "Edit benchmark, model %s, split %s: %d prompt pairs × %d seeds = %d edits × %d methods, %d steps, guidance %.1f, cross %.2f (the swapped words %.2f), self %.2f (self_max_tokens %d%s), %.0f s\n",
		run.model, split, run.pairs, run.seeds, edits, len(methods), run.steps, run.guidance, run.cross, run.crossChanged, run.self, run.selfMax, keep, run.seconds)
	var sets []string
	for _, s := range promptSets {
		sets = append(sets, fmt.Sprintf("%s (%q)", s, setExamples[s]))
	}
	fmt.Fprintf(w, "Prompt sets: %s.\n", strings.Join(sets, ", "))
	fmt.Fprintf(w, "Background changed: PSNR outside both objects below %.0f dB. Another background: the edited image shows another kind of background than its source "+
		"(gray turned grass: drawn anew as a whole, not retextured). Broken: no object found in the edited image. "+
		"Kept: the edited image's largest object has the source's attribute (judged where both show one). "+
		"Background changed beyond the edges: the same rule read beyond %d pixels of both objects, where a decoder does not redraw the pixels next to an object after its colour.\n", bgChangedBelow, edgeBand)
	fmt.Fprintf(w, "Colour swaps to a colour the source's background forbids (white on white, black on black) have their own row; %q leaves them and the reweights out. "+
		"Seed k is the k-th of each edit's own seeds.\n", rowSummary)
	if slices.Contains(methods, methodP2PRefine) {
		fmt.Fprintf(w, "%s: the word swaps run with edit kind refine (the swapped word gets attention of its own), as PIE-Bench and PnPInversion run every edit; "+
			"added phrases are refinements already (the same edits as %s), reweights are left out.\n", methodP2PRefine, methodP2P)
	}
	if slices.Contains(methods, methodDrawn) {
		fmt.Fprintf(w, "%s: each word swap drawn exactly (its source scene, and the same scene with the word swapped: same placement, background and texture), "+
			"both through the model's VAE and scored as an edit — what a perfect edit scores through this decoder and evaluator, each image decoded with its own statistics: the ceiling of the rows above it "+
			"(but for the pixels next to the object, which an edit decoded with the source's statistics keeps). "+
			"%s: the drawn source's latent with the swapped scene's on the latent cells either scene's object touches, decoded — what a perfect local blend keeps through this decoder.\n", methodDrawn, methodSpliced)
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "By kind, each seed and all seeds:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "| kind\t| method\t| seed\t"+scoreColumns)
	for _, row := range reportRows {
		for _, m := range methods {
			if !shown(row, m, records) {
				continue
			}
			for k := 0; k <= run.seeds; k++ {
				if k < run.seeds && run.seeds == 1 {
					continue
				}
				label := "all"
				if k < run.seeds {
					label = fmt.Sprint(k + 1)
				}
				t := tallyOf(records, func(r editRecord) bool {
					return inRow(row, r.row) && r.method == m && (k == run.seeds || r.seedIndex == k)
				})
				fmt.Fprintf(tw, "| %s\t| %s\t| %s\t| %s\t|\n", row, methodLabel(row, m), label, cells(t.fullRow()))
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w, "\nBy prompt set, all seeds:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "| kind\t| prompts\t| method\t"+scoreColumns)
	for _, row := range reportRows {
		for _, set := range promptSets {
			for _, m := range methods {
				t := tallyOf(records, func(r editRecord) bool { return inRow(row, r.row) && r.method == m && r.edit.set == set })
				if t.n == 0 {
					continue
				}
				fmt.Fprintf(tw, "| %s\t| %s\t| %s\t| %s\t|\n", row, set, methodLabel(row, m), cells(t.fullRow()))
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return printColourTargets(w, methods, records)
}

// printColourTargets breaks the colour swaps down by the colour they swap
// to, all seeds and prompt sets together: whether an edit holds depends
// on the colour it asks for (on the tiny model, swaps to black, white and
// yellow change the background most), which the rows by kind average away.
func printColourTargets(w io.Writer, methods []string, records []editRecord) error {
	if !slices.ContainsFunc(records, func(r editRecord) bool { return r.edit.kind == kindColour }) {
		return nil
	}
	fmt.Fprintln(w, "\nColour swaps by the colour swapped to, all seeds:")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "| to\t| method\t"+scoreColumns)
	for _, c := range scene.Colours {
		for _, m := range methods {
			t := tallyOf(records, func(r editRecord) bool { return r.edit.kind == kindColour && r.edit.swapTo == c && r.method == m })
			if t.n == 0 {
				continue
			}
			fmt.Fprintf(tw, "| %s\t| %s\t| %s\t|\n", c, m, cells(t.fullRow()))
		}
	}
	return tw.Flush()
}

// cells turns tab-separated cells into table cells.
func cells(tabbed string) string { return strings.ReplaceAll(tabbed, "\t", "\t| ") }

// scoreColumns head the cells of tally.fullRow in every table.
const scoreColumns = "| edits\t| edit success\t| mask IoU\t| centroid shift px\t| background PSNR dB\t| object area, edit / source\t| background changed\t| another background\t| broken\t| shape kept\t| colour kept\t| position kept\t| size kept\t| background changed beyond the edges\t|"

// The JSON summary (-json). Rates are fractions; every group also carries
// the counts they come from.
type editJSON struct {
	Model          string   `json:"model"`
	Split          string   `json:"split"`
	Methods        []string `json:"methods"`
	Steps          int      `json:"steps"`
	Guidance       float64  `json:"guidance"`
	Cross          float64  `json:"cross"`
	Self           float64  `json:"self"`
	SelfMaxTokens  int      `json:"self_max_tokens"`
	Norm           float64  `json:"norm"`
	KeepSourceText bool     `json:"keep_source_text"`
	DecodeNorm     string   `json:"decode_norm,omitempty"`
	BlendChanged   bool     `json:"blend_changed"`
	// BlendReweighted: the reweights blended on their words.
	BlendReweighted bool `json:"blend_reweighted"`
	// BlendObject is -blend-object: swaps blended on their object's word.
	BlendObject bool `json:"blend_object"`
	// CrossChanged is the cross window of the words each word swap
	// changes (the spec's cross_changed).
	CrossChanged float64 `json:"cross_changed"`
	// Block is -block: which block of the split's prompt pairs ran.
	Block                    int     `json:"block"`
	SeedsPerEdit             int     `json:"seeds_per_edit"`
	PromptPairs              int     `json:"prompt_pairs"`
	Seconds                  float64 `json:"seconds"`
	BackgroundChangedBelowDB float64 `json:"background_changed_below_db"`
	// BackgroundEdgeBandPx is how far from the objects the second reading
	// of the background starts (the *_beyond_edge fields).
	BackgroundEdgeBandPx int              `json:"background_edge_band_px"`
	Groups               []editGroupJSON  `json:"groups"`
	Edits                []editRecordJSON `json:"edits"`
}

// editGroupJSON is one cell of the breakdown: a report row, a prompt set
// ("all" for every set) and a method, at one seed index (null: all seeds).
// ObjectAreaRatio is the geometric mean, over the edits where both images
// show an object, of the edited image's object pixels over the source's
// (null where none does).
type editGroupJSON struct {
	Row               string   `json:"row"`
	Set               string   `json:"set"`
	Method            string   `json:"method"`
	Seed              *int     `json:"seed"`
	Edits             int      `json:"edits"`
	Succeeded         int      `json:"succeeded"`
	Success           float64  `json:"success"`
	MaskIoU           float64  `json:"mask_iou"`
	CentroidShiftPx   *float64 `json:"centroid_shift_px"`
	ObjectAreaRatio   *float64 `json:"object_area_ratio"`
	BackgroundPSNRDB  float64  `json:"background_psnr_db"`
	BackgroundChanged int      `json:"background_changed"`
	// BackgroundReplaced counts the edits whose image shows another kind
	// of background than their source's.
	BackgroundReplaced int                 `json:"background_replaced"`
	Broken             int                 `json:"broken"`
	Kept               map[string]keptJSON `json:"kept"`
	// The background read beyond the edge band (background_edge_band_px)
	// of both objects.
	BackgroundPSNRBeyondEdgeDB  float64 `json:"background_psnr_beyond_edge_db"`
	BackgroundChangedBeyondEdge int     `json:"background_changed_beyond_edge"`
}

type keptJSON struct {
	Kept   int     `json:"kept"`
	Judged int     `json:"judged"`
	Rate   float64 `json:"rate"`
}

// editRecordJSON is one scored edit. ObjectAreaRatio is its edited
// image's object pixels over the source's, null where either shows none.
type editRecordJSON struct {
	Row                         string          `json:"row"`
	Kind                        string          `json:"kind"`
	Set                         string          `json:"set"`
	Method                      string          `json:"method"`
	Source                      string          `json:"source"`
	Target                      string          `json:"target"`
	Reweight                    *reweightJSON   `json:"reweight,omitempty"`
	SeedIndex                   int             `json:"seed_index"`
	Seed                        uint64          `json:"seed"`
	Success                     bool            `json:"success"`
	MaskIoU                     float64         `json:"mask_iou"`
	CentroidShiftPx             *float64        `json:"centroid_shift_px"`
	ObjectAreaRatio             *float64        `json:"object_area_ratio"`
	BackgroundPSNRDB            float64         `json:"background_psnr_db"`
	BackgroundChanged           bool            `json:"background_changed"`
	BackgroundReplaced          bool            `json:"background_replaced"`
	Broken                      bool            `json:"broken"`
	SourceBackground            string          `json:"source_background"`
	EditBackground              string          `json:"edit_background"`
	Kept                        map[string]bool `json:"kept"`
	BackgroundPSNRBeyondEdgeDB  float64         `json:"background_psnr_beyond_edge_db"`
	BackgroundChangedBeyondEdge bool            `json:"background_changed_beyond_edge"`
}

type reweightJSON struct {
	Word   string  `json:"word"`
	Factor float64 `json:"factor"`
}

func groupJSON(row, set, method string, seed *int, t *tally) editGroupJSON {
	g := editGroupJSON{Row: row, Set: set, Method: method, Seed: seed, Edits: t.n, Succeeded: t.ok, Success: t.successRate(),
		MaskIoU: t.meanIoU(), BackgroundPSNRDB: t.meanPSNR(), BackgroundChanged: t.bgChanged, BackgroundReplaced: t.bgReplaced, Broken: t.broken, Kept: map[string]keptJSON{},
		BackgroundPSNRBeyondEdgeDB: t.meanPSNRBeyond(), BackgroundChangedBeyondEdge: t.bgChangedBeyond}
	if m, ok := t.meanShift(); ok {
		g.CentroidShiftPx = &m
	}
	if m, ok := t.meanAreaRatio(); ok {
		g.ObjectAreaRatio = &m
	}
	for at, n := range t.judged {
		g.Kept[string(at)] = keptJSON{Kept: t.kept[at], Judged: n, Rate: ratio(t.kept[at], n)}
	}
	return g
}

func writeEditJSON(w io.Writer, run editRun, records []editRecord) error {
	out := editJSON{Model: run.model, Split: run.split, Methods: run.methodList(), Steps: run.steps, Guidance: run.guidance, Cross: run.cross, Self: run.self,
		SelfMaxTokens: run.selfMax, Norm: run.norm, KeepSourceText: run.keepText, DecodeNorm: run.decodeNorm, BlendChanged: run.blendChanged, BlendReweighted: run.blendReweighted, BlendObject: run.blendObject, CrossChanged: run.crossChanged, Block: run.block, SeedsPerEdit: run.seeds, PromptPairs: run.pairs, Seconds: run.seconds, BackgroundChangedBelowDB: bgChangedBelow, BackgroundEdgeBandPx: edgeBand,
		Groups: []editGroupJSON{}, Edits: []editRecordJSON{}}
	for _, row := range reportRows {
		for _, set := range append([]string{"all"}, promptSets...) {
			for _, m := range run.methodList() {
				for k := -1; k < run.seeds; k++ {
					t := tallyOf(records, func(r editRecord) bool {
						return inRow(row, r.row) && r.method == m && (set == "all" || r.edit.set == set) && (k < 0 || r.seedIndex == k)
					})
					if t.n == 0 {
						continue
					}
					var seed *int
					if k >= 0 {
						seed = new(int)
						*seed = k
					}
					out.Groups = append(out.Groups, groupJSON(row, set, m, seed, t))
				}
			}
		}
	}
	for _, r := range records {
		s := r.score
		e := editRecordJSON{Row: r.row, Kind: r.edit.kind, Set: r.edit.set, Method: r.method, Source: r.edit.source, Target: r.edit.target,
			SeedIndex: r.seedIndex, Seed: r.seed, Success: s.success, MaskIoU: s.iou, BackgroundPSNRDB: s.bgPSNR, BackgroundChanged: s.bgChanged(),
			BackgroundReplaced: s.bgReplaced(), Broken: s.broken, SourceBackground: s.srcBackground.String(), EditBackground: s.background.String(), Kept: map[string]bool{},
			BackgroundPSNRBeyondEdgeDB: s.bgPSNRBeyondEdge, BackgroundChangedBeyondEdge: s.bgChangedBeyondEdge()}
		if r.edit.reweight() {
			e.Reweight = &reweightJSON{Word: r.edit.word, Factor: r.edit.factor}
		}
		if s.hasShift {
			shift := s.shift
			e.CentroidShiftPx = &shift
		}
		if s.hasArea {
			area := s.areaRatio
			e.ObjectAreaRatio = &area
		}
		for at, ok := range s.kept {
			e.Kept[string(at)] = ok
		}
		out.Edits = append(out.Edits, e)
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
