package main

import (
	"fmt"
	"math"
	"strings"
)

// Methods compared by the edit benchmark.
const (
	methodP2P      = "Prompt-to-Prompt"
	methodBaseline = "baseline"
	// methodP2PRefine is Prompt-to-Prompt with every edit a refinement
	// (-refine-swaps): word swaps run with edit kind refine, as PIE-Bench
	// and PnPInversion run every edit, next to the replace auto gives them.
	methodP2PRefine = "Prompt-to-Prompt, refine"
	// methodDrawn is a word swap drawn exactly and passed through the VAE
	// (-drawn): the score of a perfect edit, each image decoded with its
	// own statistics, the ceiling of the others (but for the pixels next
	// to the object, which an edit decoded with the source's keeps).
	methodDrawn = "drawn edit"
	// methodSpliced is the drawn edit as a perfect local blend (-drawn): the
	// source's latent with the swapped scene's on the object's cells.
	methodSpliced = "drawn edit, spliced"
)

// drawnMethod reports whether method scores a drawn swap, whose source is
// a drawn scene of its own rather than the Prompt-to-Prompt run's.
func drawnMethod(method string) bool { return method == methodDrawn || method == methodSpliced }

// editMethods are the methods of the default run.
var editMethods = []string{methodP2P, methodBaseline}

// Rows of the report besides the edit kinds.
const (
	// rowMustChange holds the colour swaps whose target colour the source
	// image's background does not allow (see mustChangeBackground).
	rowMustChange = "colour swap, background must change"
	// rowSummary sums the rows whose baseline is a real alternative:
	// reweights leave it out (their baseline is the source itself, which
	// would flatter it), and so do the swaps that must change the
	// background.
	rowSummary = "all but reweight"
)

var reportRows = []string{kindColour, rowMustChange, kindShape, kindRefine, kindBoost, kindSuppress, rowSummary}

func inRow(row, kind string) bool {
	if row == rowSummary {
		return kind == kindColour || kind == kindShape || kind == kindRefine
	}
	return row == kind
}

// editRecord is one scored edit: an edit of the set at one seed, by one
// method.
type editRecord struct {
	edit      *benchEdit
	row       string // the report row: the kind, or rowMustChange
	method    string
	seedIndex int
	seed      uint64
	score     editScore
}

// tally accumulates scores.
type tally struct {
	n, ok, shifts     int
	iou, shift, psnr  float64
	bgChanged, broken int
	// bgReplaced counts the edits whose image shows another kind of
	// background than their source's (editScore.bgReplaced).
	bgReplaced int
	// psnrBeyond and bgChangedBeyond read the background beyond edgeBand
	// pixels of the objects.
	psnrBeyond      float64
	bgChangedBeyond int
	kept, judged    map[attribute]int
	// areaLog sums log(areaRatio) over the areas edits where both images
	// show an object.
	areaLog float64
	areas   int
}

func (t *tally) add(s editScore) {
	t.n++
	if s.success {
		t.ok++
	}
	t.iou += s.iou
	t.psnr += s.bgPSNR
	if s.hasShift {
		t.shifts++
		t.shift += s.shift
	}
	if s.hasArea {
		t.areas++
		t.areaLog += math.Log(s.areaRatio)
	}
	if s.bgChanged() {
		t.bgChanged++
	}
	if s.bgReplaced() {
		t.bgReplaced++
	}
	t.psnrBeyond += s.bgPSNRBeyondEdge
	if s.bgChangedBeyondEdge() {
		t.bgChangedBeyond++
	}
	if s.broken {
		t.broken++
	}
	if t.kept == nil {
		t.kept, t.judged = map[attribute]int{}, map[attribute]int{}
	}
	for at, ok := range s.kept {
		t.judged[at]++
		if ok {
			t.kept[at]++
		}
	}
}

// tallyOf sums the records that pass keep.
func tallyOf(records []editRecord, keep func(editRecord) bool) *tally {
	t := &tally{}
	for _, r := range records {
		if keep(r) {
			t.add(r.score)
		}
	}
	return t
}

func (t *tally) successRate() float64 { return ratio(t.ok, t.n) }
func (t *tally) meanIoU() float64     { return fratio(t.iou, t.n) }
func (t *tally) meanPSNR() float64    { return fratio(t.psnr, t.n) }

// meanPSNRBeyond is meanPSNR read beyond edgeBand pixels of the objects.
func (t *tally) meanPSNRBeyond() float64 { return fratio(t.psnrBeyond, t.n) }

// meanShift is the mean centroid shift over the edits where both images
// show an object; ok is false where none does.
func (t *tally) meanShift() (float64, bool) { return fratio(t.shift, t.shifts), t.shifts > 0 }

// meanAreaRatio is the geometric mean of the object area ratios (edit over
// source) over the edits where both images show an object, so that an
// object drawn at half its size and one drawn at twice cancel out; ok is
// false where none does.
func (t *tally) meanAreaRatio() (float64, bool) {
	return math.Exp(fratio(t.areaLog, t.areas)), t.areas > 0
}

func ratio(a, n int) float64 { return fratio(float64(a), n) }

func fratio(a float64, n int) float64 {
	if n == 0 {
		return 0
	}
	return a / float64(n)
}

// row formats success, mask IoU, centroid shift and background PSNR as
// tab-separated cells.
func (t *tally) row() string {
	if t.n == 0 {
		return "–\t–\t–\t–"
	}
	shift := "–"
	if m, ok := t.meanShift(); ok {
		shift = fmt.Sprintf("%.2f", m)
	}
	return fmt.Sprintf("%.0f %%\t%.3f\t%s\t%.1f", 100*t.successRate(), t.meanIoU(), shift, t.meanPSNR())
}

// keptCells formats, per attribute, the share of judged edits that kept it
// ("–" for attributes the edits are not asked to keep).
func (t *tally) keptCells() string {
	cells := make([]string, len(attributes))
	for i, at := range attributes {
		cells[i] = "–"
		if n := t.judged[at]; n > 0 {
			cells[i] = fmt.Sprintf("%.0f %%", 100*ratio(t.kept[at], n))
		}
	}
	return strings.Join(cells, "\t")
}

// fullRow is row plus the object area ratio, the counts of changed and
// replaced backgrounds and of broken outputs, the kept attributes, and the
// backgrounds changed beyond edgeBand pixels of the objects.
func (t *tally) fullRow() string {
	area := "–"
	if m, ok := t.meanAreaRatio(); ok {
		area = fmt.Sprintf("%.2f", m)
	}
	if t.n == 0 {
		return fmt.Sprintf("0\t%s\t%s\t–\t–\t–\t%s\t–", t.row(), area, t.keptCells())
	}
	return fmt.Sprintf("%d\t%s\t%s\t%d\t%d\t%d\t%s\t%d", t.n, t.row(), area, t.bgChanged, t.bgReplaced, t.broken, t.keptCells(), t.bgChangedBeyond)
}
