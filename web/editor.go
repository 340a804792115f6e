package web

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"reword/shared/align"
	"reword/shared/clip"
	"reword/shared/edit"
	"reword/shared/protocol"
)

// Editor is the main page. It owns the edit being composed and the
// connection; its parts (prompts, word panel, controls, photo, results,
// history) render from its state and report changes through callbacks.
// Its behaviour lives in editor_run.go (the server's side of a run) and
// editor_view.go (history, heat maps, what the page shows).
type Editor struct {
	app.Compo

	// mounted is true once the WebAssembly has taken over the prerendered
	// page; tests wait for the root's data-ready attribute.
	mounted bool
	conn    connState
	hello   *protocol.Hello
	problem string
	// linkProblem says why the edit link the page was opened with could
	// not be read. It stays, and the address bar keeps that link, until
	// the user changes the edit or dismisses it.
	linkProblem string
	// updateReady is true once a newer build of the page has been fetched
	// in the background (OnAppUpdate): this tab still runs the old one,
	// whose controls and links may not match the server's, until it
	// reloads.
	updateReady bool
	sock        *socket
	tok         *clip.Tokenizer

	spec        edit.Spec
	comparisons []Comparison
	// selected is the word whose panel is open; its heat map is pinned.
	selected *wordRef
	hovered  *wordRef
	// photoURL shows spec.Image (a local object URL of the uploaded file,
	// or the server's copy for a photo that came with a link or from
	// history); set it with setPhoto.
	photoURL string

	// run is the latest request; shown is the run whose images are on
	// screen (a refused run keeps the previous ones); status is the run
	// whose phase the status line tells (run, or a history entry).
	run, shown, status *runState
	// refused says why Run was not sent ("" when it was).
	refused string
	// textProblems holds the settings whose text is not a value (the spec
	// keeps the last value), serverErrors the problems the server found in
	// the last refused run; both by spec field.
	textProblems map[string]string
	serverErrors map[string]string
	history      []historyEntry
	// autoRun runs the spec of an opened link once the server is ready.
	autoRun      bool
	shareLink    string
	shareNote    string
	downloadNote string
	seq          int
	// onHashChange opens an edit link pasted into the address bar of the
	// open page (see OnMount).
	onHashChange app.Func
	// checked memoises specProblems: the problems of the spec and
	// defaults whose JSON is key.
	checked struct {
		key      string
		problems []fieldProblem
	}
}

// OnAppUpdate is go-app's notice that a newer build of the page was
// fetched in the background: the page offers a reload instead of
// reloading under the user's hands.
func (e *Editor) OnAppUpdate(ctx app.Context) { e.updateReady = true }

// OnMount loads the tokenizer, the kept history and an edit link, and
// connects (in the browser only).
func (e *Editor) OnMount(ctx app.Context) {
	e.init()
	if !app.IsClient {
		return
	}
	e.mounted = true
	e.updateReady = ctx.AppUpdateAvailable()
	e.history = loadHistory(ctx)
	if link := linkFromPage(ctx); link != "" {
		e.openLink(ctx, link, false)
	} else {
		e.syncURL()
	}
	// A link pasted into the address bar of the open page only changes
	// the fragment: the browser keeps the page, and go-app does not load
	// it again, so the editor reads the link itself. replaceURL (syncURL)
	// changes the fragment through the History API, which fires no
	// hashchange: the editor's own links do not come back here.
	e.onHashChange = app.FuncOf(func(this app.Value, args []app.Value) any {
		ctx.Dispatch(func(ctx app.Context) { e.openLink(ctx, linkFromPage(ctx), true) })
		return nil
	})
	app.Window().Call("addEventListener", "hashchange", e.onHashChange)
	e.sock = &socket{
		url:       wsURL(),
		onState:   e.handleState,
		onMessage: e.handleMessage,
		onPreview: e.handlePreview,
		onError: func(ctx app.Context, err error) {
			e.problem = "The server sent a message this page cannot read: " + err.Error()
		},
	}
	e.sock.start(ctx)
}

// init prepares the state both the prerendered page and the browser start
// from.
func (e *Editor) init() {
	if e.tok != nil {
		return
	}
	tok, err := clip.Default()
	if err != nil {
		e.problem = "The tokenizer failed to load: " + err.Error()
		return
	}
	e.tok = tok
	e.setSpec(newSpec())
}

// OnDismount closes the connection and stops following the address bar.
func (e *Editor) OnDismount() {
	if e.sock != nil {
		e.sock.close()
	}
	if e.onHashChange != nil {
		app.Window().Call("removeEventListener", "hashchange", e.onHashChange)
		e.onHashChange.Release()
		e.onHashChange = nil
	}
}

// openLink puts the edit of a link in the editor, and runs it once the
// server is ready and no run is under way, as opening the page with the
// link does. The link the address bar already holds for the current edit
// changes nothing; a link that cannot be read leaves the edit as it is
// (the example, when the page opened with it; pasted is false then) and
// says why.
func (e *Editor) openLink(ctx app.Context, link string, pasted bool) {
	if link == "" || link == e.shareLink {
		return
	}
	s, err := specFromLink(link)
	if err != nil {
		kept := "The editor shows the example instead"
		if pasted {
			kept = "The editor keeps the edit it showed"
		}
		e.linkProblem = fmt.Sprintf("%v. %s; the address still holds the link.", err, kept)
		return
	}
	e.textProblems = nil
	e.selected, e.hovered = nil, nil
	photo := e.photoOf(s.Image)
	e.changed(s)
	e.setPhoto(photo)
	e.syncInputs(ctx)
	e.refreshHeat(ctx)
	e.autoRun = true
	e.runPending(ctx)
}

// serverReady reports whether the connection is up and the server said
// it can run edits: with a ready model, or with several to choose from.
func (e *Editor) serverReady() bool {
	return e.conn == stateConnected && e.hello != nil && helloProblem(e.hello) == "" && (e.hello.Model.Ready || len(e.hello.Models) > 0)
}

// model is what the server said about the model the edit runs on: the
// one it runs, or, when it runs several, the one the edit names (nil while
// it names none of them).
func (e *Editor) model() *protocol.ModelInfo {
	switch {
	case e.hello == nil:
		return nil
	case len(e.hello.Models) > 0:
		for i := range e.hello.Models {
			if e.hello.Models[i].ID == e.spec.Model {
				return &e.hello.Models[i]
			}
		}
		return nil
	}
	return &e.hello.Model
}

// modelChoices are the models the form offers: every model when the server
// runs several, or the one it runs when the edit (from a link) names
// another; nil when there is nothing to choose.
func (e *Editor) modelChoices() []string {
	if e.hello == nil {
		return nil
	}
	if len(e.hello.Models) > 0 {
		ids := make([]string, len(e.hello.Models))
		for i, m := range e.hello.Models {
			ids[i] = m.ID
		}
		return ids
	}
	if e.spec.Model != "" && e.spec.Model != e.hello.Model.ID && e.hello.Model.ID != "" {
		return []string{e.hello.Model.ID}
	}
	return nil
}

// setSpec replaces the edit and recomputes what depends on its prompts.
func (e *Editor) setSpec(s edit.Spec) {
	e.spec = s
	e.comparisons = e.comparisons[:0]
	if e.tok == nil {
		return
	}
	for i, t := range s.Targets {
		e.comparisons = append(e.comparisons, CompareAs(e.tok, s.Source, t, s.KindOf(i)))
	}
}

// changed applies an edit made by the user: the URL follows the spec, and
// what was said about the old values no longer applies.
func (e *Editor) changed(s edit.Spec) {
	e.setSpec(s)
	e.serverErrors = nil
	e.refused = ""
	e.shareNote = ""
	e.linkProblem = ""
	e.syncURL()
}

// setTextProblem records whether a setting's text is a value.
func (e *Editor) setTextProblem(field, problem string) {
	if problem == "" {
		delete(e.textProblems, field)
		return
	}
	if e.textProblems == nil {
		e.textProblems = map[string]string{}
	}
	e.textProblems[field] = problem
	e.refused = ""
}

// tailShifts is each target's Comparison.TailShift.
func (e *Editor) tailShifts() []int {
	out := make([]int, len(e.comparisons))
	for i, c := range e.comparisons {
		out[i] = c.TailShift
	}
	return out
}

// syncURL makes the current edit's link the one Share copies, and puts it
// in the address bar (in the browser).
func (e *Editor) syncURL() {
	if e.tok == nil {
		return
	}
	link, err := edit.EncodeLink(runnable(e.tok, e.spec))
	if err != nil {
		// Only an edit too long for a link fails. Share is off rather than
		// copying the previous edit's link, and says why; the address bar
		// keeps the last link that worked.
		e.shareLink = ""
		e.shareNote = "This edit is too long for a link: " + err.Error()
		return
	}
	e.shareLink = link
	if app.IsClient {
		replaceURL(link)
	}
}

// setPhoto shows a new photo (or none) in the form. The object URL of a
// photo uploaded from this page is freed when the photo goes: it keeps the
// whole file in memory, and nothing shows it any more (the results show
// the server's copy of a photo the form no longer holds).
func (e *Editor) setPhoto(url string) {
	if isObjectURL(e.photoURL) && e.photoURL != url {
		revokeObjectURL(e.photoURL)
	}
	e.photoURL = url
}

// serverPhotoURL is the server's copy of an uploaded photo ("" for none).
func (e *Editor) serverPhotoURL(image string) string {
	if image == "" {
		return ""
	}
	return backendURL(wsURL(), "/images/"+image+".png")
}

// photoOf shows the photo with this hash: the form's own copy while the
// form holds it, else the server's.
func (e *Editor) photoOf(image string) string {
	if image != "" && image == e.spec.Image && e.photoURL != "" {
		return e.photoURL
	}
	return e.serverPhotoURL(image)
}

// crossWindowOf is the cross window the word w follows without one of
// its own: the swapped words' (cross_changed) where its edit swaps it in,
// else cross; nil while the model's defaults are not known. A word of the
// source, or of no edit, follows the swapped words' window when some edit
// swaps that word in.
func (e *Editor) crossWindowOf(w wordRef) *edit.Window {
	d := e.defaults()
	swapped := e.swaps(func(target int, pw PromptWord) bool {
		return pw.Key == w.Key && (w.Prompt == sourcePrompt || w.Prompt == target)
	})
	switch {
	case swapped && e.spec.CrossChanged != nil:
		return e.spec.CrossChanged
	case d != nil && swapped:
		sw := d.SwappedWordsCross(e.spec)
		return &sw
	case swapped:
		return nil // the model may have a default of its own
	case e.spec.Cross != nil:
		return e.spec.Cross
	case d != nil:
		return &d.Cross
	}
	return nil
}

// noWordSwap says whether the edit is known to swap no word: its prompts
// are compared and no word swap swaps one in.
func (e *Editor) noWordSwap() bool {
	compared := false
	for _, c := range e.comparisons {
		compared = compared || !c.Empty
	}
	return compared && !e.swaps(func(int, PromptWord) bool { return true })
}

// swaps says whether a word swap of the edit swaps in a word that match
// accepts (given the target's index and the word).
func (e *Editor) swaps(match func(target int, w PromptWord) bool) bool {
	for i, c := range e.comparisons {
		if c.Empty || c.Kind != align.Replace {
			continue
		}
		for _, w := range c.Target {
			if w.Status == WordSwapped && match(i, w) {
				return true
			}
		}
	}
	return false
}

// defaults are the model's spec defaults from the server's hello, nil
// until a ready model said hello.
func (e *Editor) defaults() *edit.Defaults {
	m := e.model()
	if m == nil || !m.Ready || m.Defaults == nil {
		return nil
	}
	d := m.Defaults.SpecDefaults(m.ID)
	return &d
}

// problems are the fields that keep Run from sending the edit, in the
// order of the form: text that is not a value, the rules the server
// checks, and what the server said about the last refused run.
func (e *Editor) problems() []fieldProblem {
	if e.tok == nil {
		return nil
	}
	var out []fieldProblem
	seen := map[string]bool{}
	photo := e.spec.Image != ""
	for _, field := range []string{"steps", "guidance", "seed", "cross", "cross_changed", "self", "norm"} {
		if p, ok := e.textProblems[field]; ok {
			out = append(out, fieldProblem{field, sentence(fieldLabel(field, photo), p)})
			seen[field] = true
		}
	}
	for _, p := range e.specProblems() {
		if !seen[p.Field] {
			out = append(out, p)
			seen[p.Field] = true
		}
	}
	if choices := e.modelChoices(); len(choices) > 1 && e.model() == nil && !seen["model"] {
		out = append(out, fieldProblem{"model", fmt.Sprintf("Choose the model to run: this server runs %s.", strings.Join(choices, ", "))})
		seen["model"] = true
	}
	for _, field := range slices.Sorted(maps.Keys(e.serverErrors)) {
		if !seen[field] {
			out = append(out, fieldProblem{field, e.serverErrors[field]})
		}
	}
	slices.SortStableFunc(out, func(a, b fieldProblem) int { return formRank(a.Field) - formRank(b.Field) })
	return out
}

// specProblems is checkSpec of the edit under the model's defaults,
// computed again only when either changed: problems runs on every render
// (each preview frame), and a full check encodes the edit's link.
func (e *Editor) specProblems() []fieldProblem {
	d := e.defaults()
	key, err := json.Marshal(struct {
		Spec     edit.Spec
		Defaults *edit.Defaults
	}{e.spec, d})
	if err != nil || string(key) != e.checked.key {
		e.checked.key, e.checked.problems = string(key), checkSpec(e.tok, e.spec, d)
	}
	return e.checked.problems
}

// Render draws the page.
func (e *Editor) Render() app.UI {
	e.init()
	busy := e.run.active()
	probs := e.problems()
	errs := make(map[string]string, len(probs))
	for _, p := range probs {
		errs[p.Field] = p.Sentence
	}
	return app.Div().ID("app").Class("app").
		DataSet("ready", e.mounted).
		OnKeyDown(e.onKey).
		Body(
			e.renderTopbar(),
			app.If(e.hello != nil && !e.hello.Model.Ready && len(e.hello.Models) == 0, func() app.UI {
				return app.P().ID("model-problem").Class("notice problem").Text(
					"The model is not ready: " + e.hello.Model.Problem)
			}),
			app.If(e.updateReady, func() app.UI {
				return app.Div().ID("app-update").Class("notice").Role("status").Body(
					app.Span().Text("A new version of Reword is ready. Reloading keeps the history, and the edit as far as its link in the address bar holds it. "),
					app.Button().ID("app-update-reload").Type("button").Text("Reload").
						OnClick(func(ctx app.Context, ev app.Event) { ctx.Reload() }),
				)
			}),
			app.If(e.problem != "", func() app.UI {
				return app.P().ID("problem").Class("notice problem").Role("alert").Text(e.problem)
			}),
			app.If(e.linkProblem != "", func() app.UI {
				return app.Div().ID("link-problem").Class("notice problem").Role("alert").Body(
					app.Span().Text(e.linkProblem),
					app.Button().ID("link-problem-dismiss").Class("icon-button").Type("button").
						Aria("label", "Dismiss").Text("×").
						OnClick(func(ctx app.Context, ev app.Event) { e.linkProblem = "" }),
				)
			}),
			app.Main().Class("layout").Body(
				app.Div().Class("compose").Body(
					&PromptEditor{
						Spec:        e.spec,
						Comparisons: e.comparisons,
						Selected:    e.selected,
						Errors:      errs,
						Photo:       e.spec.Image != "",
						OnSource: func(ctx app.Context, text string) {
							s := cloneSpec(e.spec)
							s.Source = text
							e.changed(s)
						},
						OnTarget: func(ctx app.Context, i int, text string) {
							s := cloneSpec(e.spec)
							s.Targets[i] = text
							e.changed(s)
						},
						OnAddTarget: func(ctx app.Context) {
							s := cloneSpec(e.spec)
							last := s.Source
							if len(s.Targets) > 0 {
								last = s.Targets[len(s.Targets)-1]
							}
							s.Targets = append(s.Targets, last)
							e.changed(s)
						},
						OnDropTarget: func(ctx app.Context, i int) {
							s := cloneSpec(e.spec)
							s.DropTarget(i)
							e.selected = nil
							e.changed(s)
							e.syncInputs(ctx)
							e.refreshHeat(ctx)
						},
						OnKind: func(ctx app.Context, i int, c align.Choice) {
							s := cloneSpec(e.spec)
							s.SetKind(i, c)
							e.changed(s)
						},
						OnSelectWord: e.selectWord,
						OnHoverWord:  e.hover,
					},
					e.renderWordPanel(errs),
					e.renderActions(busy),
					&Controls{
						Spec:       e.spec,
						Defaults:   e.defaults(),
						Errors:     errs,
						OnChange:   func(ctx app.Context, update func(edit.Spec) edit.Spec) { e.changed(update(cloneSpec(e.spec))) },
						OnText:     func(ctx app.Context, field, problem string) { e.setTextProblem(field, problem) },
						Photo:      e.spec.Image != "",
						TailShifts: e.tailShifts(),
						NoWordSwap: e.noWordSwap(),
						Models:     e.modelChoices(),
					},
					e.renderUpload(errs),
				),
				app.Div().Class("output").Body(
					e.renderRunStatus(),
					e.renderResults(),
					e.renderRunSpec(),
					&History{Entries: e.history, ImageURL: e.imageURL, OnOpen: e.openHistory, OnClear: e.clearHistory},
				),
			),
		)
}

func (e *Editor) onKey(ctx app.Context, ev app.Event) {
	key := ev.Get("key").String()
	switch {
	case key == "Enter" && (ev.Get("ctrlKey").Bool() || ev.Get("metaKey").Bool()):
		ev.PreventDefault()
		e.startRun(ctx)
	case key == "Escape" && e.selected != nil:
		e.closeWord(ctx)
	}
}

func (e *Editor) renderWordPanel(errs map[string]string) app.UI {
	if e.selected == nil || e.tok == nil {
		return nil
	}
	w := *e.selected
	var needsWords []int
	// With blend_changed on, a target without blend words blends on the
	// words it changes, and with blend_reweighted on, a reweight on the
	// words it reweights; its excluded words narrow that blend. The
	// server accepts excluded words alone only for such a target.
	d := e.defaults()
	for i := range e.spec.Targets {
		if b := e.spec.BlendOf(i); len(b.Words) == 0 && len(b.Exclude) > 0 && !e.spec.BlendsImplicitly(e.tok, d, i) {
			needsWords = append(needsWords, i)
		}
	}
	return &WordPanel{
		Word:         w,
		Settings:     wordSettings(e.spec, w.Key),
		InTargets:    wordApplies(e.tok, e.spec, w.Key),
		BlendTargets: blendTargets(e.tok, e.spec, w.Key),
		NeedsWords:   needsWords,
		GlobalCross:  e.crossWindowOf(w),
		Errors:       errs,
		OnChange: func(ctx app.Context, update func(WordSettings) WordSettings) {
			s := cloneSpec(e.spec)
			setWordSettings(&s, w.Key, update(wordSettings(s, w.Key)))
			e.changed(s)
		},
		OnClose: e.closeWord,
	}
}

func (e *Editor) renderActions(busy bool) app.UI {
	connected := e.serverReady()
	return app.Div().Class("actions").Body(
		app.Button().ID("run").Class("primary").Type("button").
			Disabled(busy || !connected).
			Title("Run the edit (Ctrl+Enter)").
			OnClick(func(ctx app.Context, ev app.Event) { e.startRun(ctx) }).
			Text("Run"),
		app.If(busy, func() app.UI {
			return app.Button().ID("cancel").Class("secondary").Type("button").
				OnClick(func(ctx app.Context, ev app.Event) { e.cancelRun(ctx) }).
				Text("Cancel")
		}),
		app.Button().ID("share").Class("secondary").Type("button").
			Disabled(e.shareLink == "").
			OnClick(func(ctx app.Context, ev app.Event) { e.share(ctx) }).
			Text("Share"),
		app.If(e.shareNote != "", func() app.UI {
			return app.Span().ID("share-note").Class("hint").Aria("live", "polite").Text(e.shareNote)
		}),
		app.If(e.shareNote != "" && e.shareLink != "", func() app.UI {
			return app.Input().ID("share-link").Class("share-link").Type("url").ReadOnly(true).
				Aria("label", "Edit link").Value(pageLink(e.shareLink)).
				OnFocus(func(ctx app.Context, ev app.Event) { ctx.JSSrc().Call("select") })
		}),
	)
}

func (e *Editor) renderUpload(errs map[string]string) app.UI {
	upload := "/api/images"
	if app.IsClient {
		upload = backendURL(wsURL(), upload)
	}
	return &Upload{
		Image:      e.spec.Image,
		PreviewURL: e.photoURL,
		Inversion:  e.spec.Inversion,
		UploadURL:  upload,
		Errors:     errs,
		OnUploaded: func(ctx app.Context, hash, previewURL string) {
			s := cloneSpec(e.spec)
			s.Image, s.Inversion = hash, edit.InversionDirect
			e.setPhoto(previewURL)
			e.changed(s)
		},
		OnInversion: func(ctx app.Context, m string) {
			s := cloneSpec(e.spec)
			s.Inversion = m
			e.changed(s)
		},
		OnClear: func(ctx app.Context) {
			s := cloneSpec(e.spec)
			s.Image, s.Inversion = "", ""
			e.setPhoto("")
			e.changed(s)
		},
	}
}

func (e *Editor) renderRunStatus() app.UI {
	switch {
	case e.refused != "":
		return app.P().ID("run-status").Class("run-status refused").DataSet("phase", "refused").
			Role("alert").Text("Not run: " + e.refused)
	case e.status == nil:
		return app.P().ID("run-status").Class("run-status").DataSet("phase", "idle").
			Text("Press Run (Ctrl+Enter) to render the source and its edits.")
	}
	return app.P().ID("run-status").Class("run-status").DataSet("phase", string(e.status.Phase)).
		DataSet("run", e.status.ID).Aria("live", "polite").Text(e.status.statusText())
}

func (e *Editor) renderResults() app.UI {
	var rows []rowView
	photo, seed := "", ""
	if e.shown != nil {
		rows = e.shown.Rows
		s := e.shown.Spec
		if e.shown.Result != nil {
			s = e.shown.Result.Spec
		}
		if s.Seed != nil {
			seed = strconv.FormatUint(*s.Seed, 10)
		}
		// The photo the shown run edited, whatever the form holds now.
		photo = e.photoOf(s.Image)
	}
	return &Results{Rows: rows, PhotoURL: photo, ImageURL: e.imageURL, Seed: seed,
		DownloadNote: e.downloadNote, OnDownloadAll: e.downloadAll}
}

// renderRunSpec shows the spec the server ran, every default filled in:
// what a link to these images reproduces.
func (e *Editor) renderRunSpec() app.UI {
	if e.shown == nil || e.shown.Result == nil {
		return nil
	}
	text, err := json.MarshalIndent(e.shown.Result.Spec, "", "  ")
	if err != nil {
		return nil
	}
	return app.Details().ID("run-spec").Class("run-spec").Body(
		app.Summary().Text("Settings as run"),
		app.Pre().ID("run-spec-json").Text(string(text)),
	)
}

func (e *Editor) renderTopbar() app.UI {
	label := "offline"
	switch {
	case !e.mounted:
		label = "loading"
	case e.conn == stateConnected && e.hello != nil:
		model := "model " + e.hello.Model.ID
		if choices := e.modelChoices(); len(e.hello.Models) > 0 {
			model = "models " + strings.Join(choices, ", ")
		}
		label = fmt.Sprintf("connected · server %s · %s", e.hello.Server, model)
	case e.conn == stateConnected:
		label = "connected"
	case e.conn == stateConnecting:
		label = "connecting…"
	case e.conn == stateDisconnected:
		label = "disconnected, retrying…"
	}
	lastTry := ""
	if e.sock != nil {
		lastTry = e.sock.lastTry
	}
	return app.Header().Class("topbar").Body(
		app.Img().Src("/web/icon.svg").Alt("").Width(32).Height(32),
		app.H1().Text("Reword"),
		app.Span().Class("tagline").Text("edit an image by rewording its prompt"),
		app.Div().ID("status").Class("status").DataSet("state", string(e.conn)).DataSet("last-try", lastTry).
			Aria("live", "polite").Body(
			app.Span().Class("dot "+string(e.conn)),
			app.Span().ID("status-text").Text(label),
		),
	)
}
