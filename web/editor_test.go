package web

import (
	"strings"
	"testing"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"reword/shared/edit"
	"reword/shared/protocol"
)

// contextHolder is a component whose context drives the editor's
// methods in tests.
type contextHolder struct {
	app.Compo
	ctx app.Context
}

// OnPreRender is where a native test engine hands out the context.
func (c *contextHolder) OnPreRender(ctx app.Context) { c.ctx = ctx }
func (c *contextHolder) Render() app.UI              { return app.Div() }

func testContext(t *testing.T) app.Context {
	t.Helper()
	engine := app.NewTestEngine()
	c := &contextHolder{}
	if err := engine.Load(c); err != nil {
		t.Fatal(err)
	}
	engine.ConsumeAll()
	return c.ctx
}

func testEditor(t *testing.T) *Editor {
	t.Helper()
	e := &Editor{}
	e.init()
	if e.tok == nil {
		t.Fatal(e.problem)
	}
	// Not connected: a Run is refused by the socket, not by the form.
	e.sock = &socket{}
	return e
}

func startedTwoRows(id string) *protocol.Message {
	return msg(id, &protocol.Started{Steps: 10, Rows: []protocol.Row{
		{Index: 0, Role: protocol.RoleSource, Prompt: "a red circle"},
		{Index: 1, Role: protocol.RoleTarget, Prompt: "a blue circle"},
	}})
}

func resultOf(spec edit.Spec) *protocol.Result {
	a, b := strings.Repeat("a", 64), strings.Repeat("b", 64)
	return &protocol.Result{Spec: spec, Images: []protocol.Image{
		{Row: 0, Hash: a, URL: "/images/" + a + ".png"},
		{Row: 1, Hash: b, URL: "/images/" + b + ".png"}}}
}

// Cancel pressed as the run finishes: the server's not_found for the
// finished id neither fails the run nor keeps the next Run from going.
func TestCancelCrossingTheResult(t *testing.T) {
	ctx := testContext(t)
	e := testEditor(t)
	e.run = &runState{ID: "r1", Spec: e.spec, Phase: phaseSent}
	e.status = e.run
	e.handleMessage(ctx, startedTwoRows("r1"))
	e.handleMessage(ctx, msg("r1", resultOf(e.spec)))
	e.handleMessage(ctx, msg("r1", &protocol.Error{Code: protocol.CodeNotFound, Field: "id", Message: "no queued or running request has this id"}))
	if e.run.Phase != phaseDone || len(e.history) != 1 {
		t.Errorf("the finished run turned %s (%d in history)", e.run.Phase, len(e.history))
	}
	if p := e.problems(); len(p) > 0 {
		t.Errorf("Run is refused: %+v", p)
	}
	e.startRun(ctx)
	if e.refused != "" {
		t.Errorf("Run refused: %q", e.refused)
	}
}

// Only problems of the spec's fields go next to the form's controls; an
// error about the envelope is the status line's.
func TestFileErrorKeepsToSpecFields(t *testing.T) {
	e := testEditor(t)
	e.fileError(&protocol.Error{Code: protocol.CodeDuplicateID, Field: "id", Message: "a request with this id is already queued or running"})
	if len(e.serverErrors) > 0 || len(e.problems()) > 0 {
		t.Errorf("an envelope error was filed under a field: %v", e.serverErrors)
	}
	e.fileError(&protocol.Error{Code: protocol.CodeBadMessage, Field: "data", Message: "invalid run data"})
	if len(e.serverErrors) > 0 {
		t.Errorf("an envelope error was filed under a field: %v", e.serverErrors)
	}
	e.fileError(&protocol.Error{Code: protocol.CodeNotFound, Field: "spec.image", Message: "the photo expired; upload it again"})
	if e.serverErrors["image"] != "the photo expired; upload it again" {
		t.Errorf("a spec error was not filed: %v", e.serverErrors)
	}
	e.fileError(&protocol.Error{Code: protocol.CodeInvalidSpec, Field: "spec.steps",
		Problems: []protocol.Problem{{Field: "spec.steps", Message: "must be 1–150"}, {Field: "id", Message: "is wrong"}}})
	if len(e.serverErrors) != 1 || e.serverErrors["steps"] != "Steps must be 1–150." {
		t.Errorf("problems filed: %v", e.serverErrors)
	}
}

func TestSpecFieldKey(t *testing.T) {
	for in, want := range map[string]string{
		"spec.targets[1]":              "targets[1]",
		"data.spec.steps":              "steps",
		`spec.reweights["a"]`:          `reweights["a"]`,
		"data.spec.blend[0]":           "blend[0]",
		`spec.blend[1].words["grass"]`: `blend[1].words["grass"]`,
		"id":                           "",
		"type":                         "",
		"v":                            "",
		"data":                         "",
		"data.heat_maps":               "",
		"spec.":                        "",
		"":                             "",
	} {
		got, ok := specFieldKey(in)
		if got != want || ok != (want != "") {
			t.Errorf("specFieldKey(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

// A history entry opened while the run waits in the queue: once the run
// starts, its images take the results over, and the status line tells it.
func TestStatusFollowsTheRunOnScreen(t *testing.T) {
	ctx := testContext(t)
	e := testEditor(t)
	old := e.spec.Clone()
	old.Source = "a green square"
	e.history = []historyEntry{{Spec: old, Result: *resultOf(old)}}
	e.history[0].Result.Timings.RunMS = 1234
	e.run = &runState{ID: "r1", Spec: e.spec, Phase: phaseQueued}
	e.status = e.run
	e.openHistory(ctx, 0)
	if e.status == e.run {
		t.Fatal("setup: the history entry is not on screen")
	}
	e.handleMessage(ctx, startedTwoRows("r1"))
	e.handleMessage(ctx, msg("r1", &protocol.Progress{Step: 3, Total: 10}))
	if e.shown != e.run || e.status != e.run || e.status.statusText() != "Step 3 of 10" {
		t.Errorf("shown %s, status %s %q", e.shown.ID, e.status.ID, e.status.statusText())
	}
}

// The results' photo is the one the run edited, whatever the form holds
// since: another photo, or none.
func TestResultsShowThePhotoTheRunEdited(t *testing.T) {
	ctx := testContext(t)
	e := testEditor(t)
	photoA, photoB := strings.Repeat("1", 64), strings.Repeat("2", 64)
	s := e.spec.Clone()
	s.Image, s.Inversion = photoA, edit.InversionDirect
	e.setPhoto("blob:http://localhost/a")
	e.changed(s)
	e.run = &runState{ID: "r1", Spec: e.spec, Phase: phaseSent}
	e.handleMessage(ctx, startedTwoRows("r1"))
	e.handleMessage(ctx, msg("r1", resultOf(e.spec)))
	if got := e.renderResults().(*Results).PhotoURL; got != "blob:http://localhost/a" {
		t.Errorf("while the form holds the photo: %q", got)
	}

	s = e.spec.Clone()
	s.Image = photoB
	e.setPhoto("blob:http://localhost/b")
	e.changed(s)
	if got := e.renderResults().(*Results).PhotoURL; !strings.Contains(got, photoA) {
		t.Errorf("after uploading another photo the results show %q", got)
	}

	s = e.spec.Clone()
	s.Image, s.Inversion = "", ""
	e.setPhoto("")
	e.changed(s)
	r := e.renderResults().(*Results)
	if !strings.Contains(r.PhotoURL, photoA) || rowLabel(r.Rows[0], r.PhotoURL != "") != "Reconstruction" {
		t.Errorf("after removing the photo the results show %q, row 0 %q", r.PhotoURL, rowLabel(r.Rows[0], r.PhotoURL != ""))
	}
}

// A history entry with the form's own photo keeps showing the local copy.
func TestHistoryKeepsTheFormsPhoto(t *testing.T) {
	ctx := testContext(t)
	e := testEditor(t)
	photo := strings.Repeat("1", 64)
	s := e.spec.Clone()
	s.Image, s.Inversion = photo, edit.InversionDirect
	e.setPhoto("blob:http://localhost/a")
	e.changed(s)
	e.history = []historyEntry{{Spec: e.spec, Result: *resultOf(e.spec)}}
	e.openHistory(ctx, 0)
	if e.photoURL != "blob:http://localhost/a" {
		t.Errorf("photo %q", e.photoURL)
	}
	other := e.spec.Clone()
	other.Image = strings.Repeat("2", 64)
	e.history = append(e.history, historyEntry{Spec: other, Result: *resultOf(other)})
	e.openHistory(ctx, 1)
	if isObjectURL(e.photoURL) || !strings.Contains(e.photoURL, other.Image) {
		t.Errorf("photo %q", e.photoURL)
	}
}

// An edit too long for a link disables Share instead of leaving it to copy
// the previous edit's link.
func TestLongEditHasNoLink(t *testing.T) {
	e := testEditor(t)
	e.syncURL()
	if e.shareLink == "" {
		t.Fatal("setup: the example has no link")
	}
	x := uint32(12345)
	words := func() string { // random words compress badly
		var b strings.Builder
		for b.Len() < 1500 {
			for range 5 {
				x = x*1664525 + 1013904223
				b.WriteByte(byte('a' + (x>>24)%26))
			}
			b.WriteString(" ")
		}
		return strings.TrimSpace(b.String())
	}
	s := e.spec.Clone()
	s.Source = words()
	s.Targets = []string{words(), words(), words(), words()}
	if p := checkSpec(e.tok, s, nil); len(p) > 0 {
		t.Fatalf("setup: the editor refuses the edit: %+v", p)
	}
	e.changed(s)
	if e.shareLink != "" || !strings.Contains(e.shareNote, "too long for a link") {
		t.Errorf("share link %q, note %q", e.shareLink, e.shareNote)
	}
}

// A link pasted into the address bar of the open editor replaces the edit;
// the editor's own link, written back by syncURL, changes nothing.
func TestOpenLink(t *testing.T) {
	ctx := testContext(t)
	e := testEditor(t)
	e.syncURL()
	other := e.spec.Clone()
	other.Source, other.Targets = "a green square", []string{"a yellow square"}
	link, err := edit.EncodeLink(other)
	if err != nil {
		t.Fatal(err)
	}
	e.openLink(ctx, link, true)
	if e.spec.Source != "a green square" || e.spec.Targets[0] != "a yellow square" || !e.autoRun {
		t.Errorf("the link was not opened: %+v, autoRun %v", e.spec, e.autoRun)
	}
	if e.shareLink == "" {
		t.Error("the opened edit has no link")
	}

	// syncURL's replaceURL puts e.shareLink in the address bar: reading it
	// back must not reset the edit.
	e.autoRun = false
	e.textProblems = map[string]string{"steps": "is not a number"}
	e.openLink(ctx, e.shareLink, true)
	if e.autoRun || len(e.textProblems) == 0 {
		t.Error("the editor's own link was opened again")
	}

	e.openLink(ctx, "not-a-link", true)
	if !strings.Contains(e.linkProblem, "The editor keeps the edit it showed") || e.spec.Source != "a green square" {
		t.Errorf("a broken link: problem %q, source %q", e.linkProblem, e.spec.Source)
	}

	// Opened while a run is under way, the link's edit runs once that run
	// has ended.
	e.conn, e.hello = stateConnected, &protocol.Hello{Protocol: protocol.Version, Meaning: edit.MeaningVersion, Model: readyModel("tiny", 20)}
	e.run = &runState{ID: "r1", Spec: e.spec, Phase: phaseRunning}
	other.Source = "a red star"
	if link, err = edit.EncodeLink(other); err != nil {
		t.Fatal(err)
	}
	e.openLink(ctx, link, true)
	if !e.autoRun || e.run.ID != "r1" {
		t.Fatalf("a link opened during a run: autoRun %v, run %s", e.autoRun, e.run.ID)
	}
	e.handleMessage(ctx, msg("r1", resultOf(e.run.Spec)))
	// The test's socket is not connected: the run is tried, and refused there.
	if e.autoRun || e.problem == "" {
		t.Errorf("after the run ended: autoRun %v, problem %q; want the link's edit run", e.autoRun, e.problem)
	}
}

// A photo dropped while another uploads is refused in words: both at once
// would race.
func TestUploadOneAtATime(t *testing.T) {
	u := &Upload{busy: true}
	u.take(app.Context{}, nil)
	if u.problem != busyNote || !u.busy {
		t.Errorf("problem %q, busy %v", u.problem, u.busy)
	}
}

func TestIsObjectURL(t *testing.T) {
	if !isObjectURL("blob:http://localhost:8080/0b8e-4c") || isObjectURL("http://localhost/images/aa.png") || isObjectURL("") {
		t.Error("isObjectURL")
	}
}

// readyModel is a model as a server's hello tells it: ready, with
// defaults of its own.
func readyModel(id string, steps int) protocol.ModelInfo {
	d := edit.Defaults{Model: id, Steps: steps, Guidance: 4, Sizes: []edit.Size{{Width: 64, Height: 64}},
		Schedulers: []string{"ddim"}, Cross: edit.Fraction(0.8), Self: edit.Fraction(0.4)}
	return protocol.ModelInfo{ID: id, Ready: true, Defaults: protocol.DefaultsOf(d)}
}

// With several models served, the form offers them, Run is refused until
// the edit names one, and the named model's defaults then apply; with
// one model, the form offers it only to an edit that names another.
func TestChoosingAModel(t *testing.T) {
	e := testEditor(t)
	e.conn = stateConnected
	e.hello = &protocol.Hello{Protocol: protocol.Version, Meaning: edit.MeaningVersion,
		Model:  protocol.ModelInfo{Problem: "several models are served (a, b): name one in spec.model"},
		Models: []protocol.ModelInfo{readyModel("a", 20), readyModel("b", 30)}}
	if !e.serverReady() || e.defaults() != nil || strings.Join(e.modelChoices(), " ") != "a b" {
		t.Fatalf("several models, none chosen: ready %v, defaults %+v, choices %v", e.serverReady(), e.defaults(), e.modelChoices())
	}
	probs := e.problems()
	if len(probs) == 0 || probs[0].Field != "model" || !strings.Contains(probs[0].Sentence, "this server runs a, b") {
		t.Fatalf("problems with no model chosen: %+v", probs)
	}
	s := cloneSpec(e.spec)
	s.Model = "b"
	e.changed(s)
	if d := e.defaults(); d == nil || d.Model != "b" || d.Steps != 30 {
		t.Fatalf("model b chosen: defaults %+v", d)
	}
	for _, p := range e.problems() {
		if p.Field == "model" {
			t.Errorf("model b chosen: %+v", p)
		}
	}

	e.hello = &protocol.Hello{Protocol: protocol.Version, Meaning: edit.MeaningVersion, Model: readyModel("a", 20)}
	if e.modelChoices() == nil || e.defaults() == nil {
		t.Fatalf("one model a, an edit naming b: choices %v, defaults %+v", e.modelChoices(), e.defaults())
	}
	found := false
	for _, p := range e.problems() {
		found = found || p.Field == "model"
	}
	if !found {
		t.Error("an edit naming a model the server does not run has no model problem")
	}
	s = cloneSpec(e.spec)
	s.Model = ""
	e.changed(s)
	if e.modelChoices() != nil {
		t.Errorf("one model, an edit naming none: choices %v", e.modelChoices())
	}
}

// The word panel starts a word's cross slider where the word's window
// ends without one of its own: a word its edit swaps in follows the
// swapped words' window (the model's cross_changed, or the spec's), every
// other word cross — per edit, so a word swapped in one edit and kept in
// another follows each edit's window there.
func TestWordPanelFollowsTheSwappedWordsWindow(t *testing.T) {
	e := testEditor(t)
	m := readyModel("tiny", 50)
	changed := edit.Fraction(0.4)
	m.Defaults.Cross, m.Defaults.CrossChanged = edit.Fraction(1), &changed
	e.hello = &protocol.Hello{Protocol: protocol.Version, Meaning: edit.MeaningVersion, Model: m}
	e.setSpec(edit.Spec{Source: "a red circle", Targets: []string{"a blue circle"}})
	for key, want := range map[string]float64{"blue": 0.4, "circle": 1} {
		if w := e.crossWindowOf(wordRef{Prompt: 0, Key: key}); w == nil || w.End != want {
			t.Errorf("%s follows %v; want the first %v", key, w, want)
		}
	}
	stated := edit.Fraction(0.6)
	s := e.spec.Clone()
	s.CrossChanged = &stated
	e.setSpec(s)
	if w := e.crossWindowOf(wordRef{Prompt: 0, Key: "blue"}); w == nil || w.End != 0.6 {
		t.Errorf("blue with the spec's cross_changed 0.6 follows %v", w)
	}
	// A refinement swaps no word: its words follow cross.
	e.setSpec(edit.Spec{Source: "a red circle", Targets: []string{"a red circle on grass"}})
	if w := e.crossWindowOf(wordRef{Prompt: 0, Key: "grass"}); w == nil || w.End != 1 {
		t.Errorf("an added word follows %v; want cross, the first 1", w)
	}
	// "blue" swapped in by edit 1 and added by edit 2 (a refinement):
	// each edit's window; in the source's words, the swapped words'.
	e.setSpec(edit.Spec{Source: "a red circle", Targets: []string{"a blue circle", "a blue circle on grass"}})
	for _, c := range []struct {
		w    wordRef
		want float64
	}{
		{wordRef{Prompt: 0, Key: "blue"}, 0.4},
		{wordRef{Prompt: 1, Key: "blue"}, 1},
		{wordRef{Prompt: 1, Key: "grass"}, 1},
		{wordRef{Prompt: sourcePrompt, Key: "blue"}, 0.4},
	} {
		if w := e.crossWindowOf(c.w); w == nil || w.End != c.want {
			t.Errorf("%q of edit %d follows %v; want the first %v", c.w.Key, c.w.Prompt+1, w, c.want)
		}
	}
}

// TestHelloOfAnotherMeaning: a server whose spec fields mean other edits
// than this page's (another build; 0 from a build before the field) is
// not run against: this page's links of its runs would open as other
// edits. The page says so and keeps Run off; the same server of this
// page's meaning is ready.
func TestHelloOfAnotherMeaning(t *testing.T) {
	ctx := testContext(t)
	e := testEditor(t)
	e.conn = stateConnected
	for _, meaning := range []int{0, edit.MeaningVersion - 1, edit.MeaningVersion + 1} {
		e.handleMessage(ctx, msg("", &protocol.Hello{Protocol: protocol.Version, Meaning: meaning, Model: readyModel("tiny", 20)}))
		if !strings.Contains(e.problem, "Reload the page") || e.serverReady() {
			t.Errorf("meaning %d: problem %q, ready %v; want a reload asked and no run", meaning, e.problem, e.serverReady())
		}
	}
	e.handleMessage(ctx, msg("", &protocol.Hello{Protocol: protocol.Version, Meaning: edit.MeaningVersion, Model: readyModel("tiny", 20)}))
	if e.problem != "" || !e.serverReady() {
		t.Errorf("this page's meaning: problem %q, ready %v", e.problem, e.serverReady())
	}
}

// TestAppUpdateOffersReload: a newer build fetched in the background is
// offered as a reload, never forced on the user mid-edit, and nothing is
// offered before one arrives.
func TestAppUpdateOffersReload(t *testing.T) {
	ctx := testContext(t)
	e := testEditor(t)
	if page := app.HTMLString(e); strings.Contains(page, `id="app-update"`) {
		t.Error("a reload is offered before any update arrived")
	}
	e.OnAppUpdate(ctx)
	page := app.HTMLString(e)
	if !strings.Contains(page, `id="app-update"`) || !strings.Contains(page, `id="app-update-reload"`) || !strings.Contains(page, "A new version of Reword is ready") {
		t.Errorf("after an update the page offers no reload:\n%.2000s", page)
	}
}
