package web

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"reword/shared/clip"
	"reword/shared/edit"
	"reword/shared/protocol"
)

// Editor is the main page. It owns the edit being composed and the
// connection; its parts (prompts, word panel, controls, photo, results,
// history) render from its state and report changes through callbacks.
type Editor struct {
	app.Compo

	// mounted is true once the WebAssembly has taken over the prerendered
	// page; tests wait for the root's data-ready attribute.
	mounted bool
	conn    connState
	hello   *protocol.Hello
	problem string
	sock    *socket
	tok     *clip.Tokenizer

	spec        edit.Spec
	comparisons []Comparison
	selected    *wordRef
	hovered     *wordRef
	// photoURL shows the uploaded photo (a local object URL, or the
	// server's copy for a photo that came with a link).
	photoURL string

	run *runState
	// shown is the run whose images are on screen: the current run, or a
	// history entry.
	shown *runState
	// known is the last spec the server ran with its defaults filled in.
	known   *edit.Spec
	errors  map[string]string
	history []historyEntry
	// autoRun runs the spec of an opened link once the server is ready.
	autoRun   bool
	shareLink string
	shareNote string
	seq       int
}

// OnMount loads the tokenizer, restores an edit link and connects (in the
// browser only).
func (e *Editor) OnMount(ctx app.Context) {
	e.init()
	if !app.IsClient {
		return
	}
	e.mounted = true
	if link := linkFromPage(ctx); link != "" {
		s, err := specFromLink(link)
		if err != nil {
			e.problem = err.Error()
		} else {
			e.setSpec(s)
			e.autoRun = true
			if s.Image != "" {
				e.photoURL = backendURL(wsURL(), "/images/"+s.Image+".png")
			}
		}
	}
	e.syncURL()
	e.sock = &socket{
		url:       wsURL(),
		onState:   e.handleState,
		onMessage: e.handleMessage,
		onPreview: e.handlePreview,
		onError: func(ctx app.Context, err error) {
			e.problem = "The server sent a message this page cannot read: " + err.Error()
		},
	}
	e.sock.connect(ctx)
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

// OnDismount closes the connection.
func (e *Editor) OnDismount() {
	if e.sock != nil {
		e.sock.close()
	}
}

// setSpec replaces the edit and recomputes what depends on its prompts.
func (e *Editor) setSpec(s edit.Spec) {
	e.spec = s
	e.comparisons = e.comparisons[:0]
	if e.tok == nil {
		return
	}
	for _, t := range s.Targets {
		e.comparisons = append(e.comparisons, Compare(e.tok, s.Source, t))
	}
}

// changed applies an edit made by the user: the URL follows the spec, and
// errors about the old values no longer apply.
func (e *Editor) changed(s edit.Spec) {
	e.setSpec(s)
	e.errors = nil
	e.shareNote = ""
	e.syncURL()
}

// syncURL puts the current edit's link in the address bar.
func (e *Editor) syncURL() {
	if !app.IsClient || e.tok == nil {
		return
	}
	link, err := edit.EncodeLink(runnable(e.tok, e.spec))
	if err != nil {
		// Only an edit too long for a link fails; the page keeps the last
		// link that worked and Share says why.
		e.shareNote = "This edit is too long for a link: " + err.Error()
		return
	}
	e.shareLink = link
	replaceURL(link)
}

func (e *Editor) handleState(ctx app.Context, s connState) {
	e.conn = s
	if s == stateDisconnected && e.run.active() {
		e.run.Phase = phaseFailed
		e.run.Err = &protocol.Error{Code: protocol.CodeInternal, Message: "the connection dropped; run it again once reconnected"}
	}
}

func (e *Editor) handleMessage(ctx app.Context, m *protocol.Message) {
	if e.run.apply(m) {
		switch p := m.Payload.(type) {
		case *protocol.Started:
			e.known = &p.Spec
		case *protocol.Result:
			e.known = &p.Spec
			e.history = slices.Insert(e.history, 0, historyEntry{Spec: cloneSpec(e.run.Spec), Result: *p})
			e.history = e.history[:min(len(e.history), maxHistory)]
		case *protocol.Error:
			e.fileError(p)
		}
		return
	}
	switch p := m.Payload.(type) {
	case *protocol.Hello:
		e.hello = p
		e.problem = ""
		if p.Protocol != protocol.Version {
			e.problem = fmt.Sprintf("The server speaks protocol %d; this page speaks %d. Reload the page.", p.Protocol, protocol.Version)
			return
		}
		if e.autoRun && p.Model.Ready {
			e.autoRun = false
			e.startRun(ctx)
		}
	case *protocol.Error:
		if m.ID == "" {
			e.problem = p.Message
		}
	}
}

// fileError puts a refused run's problems next to the fields they concern;
// what belongs to no field goes to the run status.
func (e *Editor) fileError(p *protocol.Error) {
	e.errors = map[string]string{}
	for _, pr := range p.Problems {
		e.errors[fieldKey(pr.Field)] = pr.Message
	}
	if p.Field != "" {
		if _, ok := e.errors[fieldKey(p.Field)]; !ok {
			e.errors[fieldKey(p.Field)] = p.Message
		}
	}
}

func (e *Editor) handlePreview(ctx app.Context, p protocol.Preview) {
	if e.run.preview(p) && e.shown == e.run {
		ctx.Defer(func(app.Context) { drawPreview(p) })
	}
}

// startRun sends the current edit.
func (e *Editor) startRun(ctx app.Context) {
	if e.run.active() || e.tok == nil {
		return
	}
	spec := runnable(e.tok, e.spec)
	if spec.Image != "" && len(e.tok.Encode(spec.Source).IDs) <= 2 {
		e.errors = map[string]string{"source": "Describe the photo as it is: the caption is what the photo is inverted with."}
		return
	}
	e.seq++
	id := fmt.Sprintf("run-%d-%d", time.Now().UnixMilli(), e.seq)
	msg, err := protocol.Encode(protocol.TypeRun, id, protocol.Run{Spec: spec, HeatMaps: true})
	if err != nil {
		e.problem = "This edit cannot be sent: " + err.Error()
		return
	}
	if err := e.sock.send(msg); err != nil {
		e.problem = err.Error()
		return
	}
	e.errors = nil
	e.run = &runState{ID: id, Spec: spec, Phase: phaseSent}
	e.shown = e.run
}

func (e *Editor) cancelRun(ctx app.Context) {
	if !e.run.active() {
		return
	}
	msg, err := protocol.Encode(protocol.TypeCancel, e.run.ID, protocol.Cancel{})
	if err == nil {
		err = e.sock.send(msg)
	}
	if err != nil {
		e.problem = "Cancelling failed: " + err.Error()
	}
}

func (e *Editor) share(ctx app.Context) {
	if e.shareLink == "" {
		return
	}
	url := pageLink(e.shareLink)
	e.shareNote = "Copying…"
	copyToClipboard(ctx, url, func(ctx app.Context, ok bool) {
		if ok {
			e.shareNote = "Link copied."
		} else {
			e.shareNote = "Copy the link below."
		}
	})
}

// openHistory shows a past result and restores its settings.
func (e *Editor) openHistory(ctx app.Context, i int) {
	h := e.history[i]
	e.changed(cloneSpec(h.Spec))
	res := h.Result
	shown := &runState{ID: "history", Spec: h.Spec, Phase: phaseDone, Result: &res}
	for _, img := range res.Images {
		prompt := h.Spec.Source
		role := protocol.RoleSource
		if img.Row > 0 && img.Row <= len(h.Spec.Targets) {
			prompt, role = h.Spec.Targets[img.Row-1], protocol.RoleTarget
		}
		im := img
		shown.Rows = append(shown.Rows, rowView{Index: img.Row, Role: role, Prompt: prompt, Image: &im})
	}
	e.shown = shown
}

// hover overlays the hovered word's heat map on its row's image.
func (e *Editor) hover(ctx app.Context, w *wordRef) {
	prev := e.hovered
	e.hovered = w
	ctx.PreventUpdate()
	if prev != nil {
		drawHeat(prev.Prompt+1, "", 0, 0, nil, 0, 0)
	}
	if w == nil || e.shown == nil || e.shown.Result == nil {
		return
	}
	// The maps belong to the prompts as they were run; a word of an edited
	// prompt may no longer sit at the same tokens.
	prompt := e.shown.Spec.Source
	current := e.spec.Source
	if w.Prompt != sourcePrompt {
		if w.Prompt >= len(e.shown.Spec.Targets) || w.Prompt >= len(e.spec.Targets) {
			return
		}
		prompt, current = e.shown.Spec.Targets[w.Prompt], e.spec.Targets[w.Prompt]
	}
	if prompt != current {
		return
	}
	row := w.Prompt + 1
	if wd, ht, values := wordHeat(e.shown.Result.HeatMaps, row, w.Tokens); values != nil {
		iw, ih := 0, 0
		for _, r := range e.shown.Rows {
			if r.Index == row && r.Image != nil {
				iw, ih = r.Image.Width, r.Image.Height
			}
		}
		drawHeat(row, w.Key, wd, ht, values, iw, ih)
	}
}

// imageURL resolves a result URL against the backend.
func (e *Editor) imageURL(u string) string { return backendURL(wsURL(), u) }

// Render draws the page.
func (e *Editor) Render() app.UI {
	e.init()
	busy := e.run.active()
	return app.Div().ID("app").Class("app").
		DataSet("ready", e.mounted).
		OnKeyDown(e.onKey).
		Body(
			e.renderTopbar(),
			app.If(e.hello != nil && !e.hello.Model.Ready, func() app.UI {
				return app.P().ID("model-problem").Class("notice problem").Text(
					"The model is not ready: " + e.hello.Model.Problem)
			}),
			app.If(e.problem != "", func() app.UI {
				return app.P().ID("problem").Class("notice problem").Role("alert").Text(e.problem)
			}),
			app.Main().Class("layout").Body(
				app.Div().Class("compose").Body(
					&PromptEditor{
						Spec:        e.spec,
						Comparisons: e.comparisons,
						Selected:    e.selected,
						Errors:      e.errors,
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
							s.Targets = slices.Delete(s.Targets, i, i+1)
							e.selected = nil
							e.changed(s)
						},
						OnSelectWord: func(ctx app.Context, w wordRef) { e.selected = &w },
						OnHoverWord:  e.hover,
					},
					e.renderWordPanel(),
					e.renderActions(busy),
					&Controls{
						Spec:     e.spec,
						Known:    e.known,
						Errors:   e.errors,
						OnChange: func(ctx app.Context, update func(edit.Spec) edit.Spec) { e.changed(update(cloneSpec(e.spec))) },
					},
					e.renderUpload(),
				),
				app.Div().Class("output").Body(
					e.renderRunStatus(),
					e.renderResults(),
					e.renderRunSpec(),
					&History{Entries: e.history, ImageURL: e.imageURL, OnOpen: e.openHistory},
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
		e.selected = nil
	}
}

func (e *Editor) renderWordPanel() app.UI {
	if e.selected == nil || e.tok == nil {
		return nil
	}
	w := *e.selected
	var global *edit.Window
	switch {
	case e.spec.Cross != nil:
		global = e.spec.Cross
	case e.known != nil:
		global = e.known.Cross
	}
	return &WordPanel{
		Word:        w,
		Settings:    wordSettings(e.spec, w.Key),
		InTargets:   wordApplies(e.tok, e.spec, w.Key),
		GlobalCross: global,
		Errors:      e.errors,
		OnChange: func(ctx app.Context, update func(WordSettings) WordSettings) {
			s := cloneSpec(e.spec)
			setWordSettings(&s, w.Key, update(wordSettings(s, w.Key)))
			e.changed(s)
		},
		OnClose: func(ctx app.Context) { e.selected = nil },
	}
}

func (e *Editor) renderActions(busy bool) app.UI {
	connected := e.conn == stateConnected && e.hello != nil && e.hello.Model.Ready
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

func (e *Editor) renderUpload() app.UI {
	upload := "/api/images"
	if app.IsClient {
		upload = backendURL(wsURL(), upload)
	}
	return &Upload{
		Image:      e.spec.Image,
		PreviewURL: e.photoURL,
		Inversion:  e.spec.Inversion,
		UploadURL:  upload,
		Errors:     e.errors,
		OnUploaded: func(ctx app.Context, hash, previewURL string) {
			s := cloneSpec(e.spec)
			s.Image, s.Inversion = hash, edit.InversionDirect
			e.photoURL = previewURL
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
			e.photoURL = ""
			e.changed(s)
		},
	}
}

func (e *Editor) renderRunStatus() app.UI {
	if e.shown == nil {
		return app.P().ID("run-status").Class("run-status").DataSet("phase", "idle").
			Text("Press Run (Ctrl+Enter) to render the source and its edits.")
	}
	return app.P().ID("run-status").Class("run-status").DataSet("phase", string(e.shown.Phase)).
		Aria("live", "polite").Text(e.shown.statusText())
}

func (e *Editor) renderResults() app.UI {
	var rows []rowView
	photo := ""
	if e.shown != nil {
		rows = e.shown.Rows
	}
	if e.spec.Image != "" {
		photo = e.photoURL
	}
	return &Results{Rows: rows, PhotoURL: photo, ImageURL: e.imageURL}
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
		label = fmt.Sprintf("connected · server %s · model %s", e.hello.Server, e.hello.Model.ID)
	case e.conn == stateConnected:
		label = "connected"
	case e.conn == stateConnecting:
		label = "connecting…"
	case e.conn == stateDisconnected:
		label = "disconnected, retrying…"
	}
	return app.Header().Class("topbar").Body(
		app.Img().Src("/web/icon.svg").Alt("").Width(32).Height(32),
		app.H1().Text("Reword"),
		app.Span().Class("tagline").Text("edit an image by rewording its prompt"),
		app.Div().ID("status").Class("status").DataSet("state", string(e.conn)).Aria("live", "polite").Body(
			app.Span().Class("dot "+string(e.conn)),
			app.Span().ID("status-text").Text(label),
		),
	)
}
