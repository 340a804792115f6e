package web

import (
	"fmt"
	"slices"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"reword/shared/edit"
	"reword/shared/protocol"
)

// The editor's side of a run: sending it, the server's answers, and what
// the page does with them.

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
			// The new run's rows replace the images on screen only now: a
			// run the server refuses leaves the previous results. The
			// status line tells the run on screen, even if a history
			// entry was opened while this one waited in the queue.
			e.shown, e.status = e.run, e.run
			// The rows reuse the canvases of the run shown before, which
			// still hold its last frames; the new run's previews start
			// from blank.
			rows := e.run.Rows
			ctx.Defer(func(app.Context) { clearPreviews(rows) })
		case *protocol.Result:
			e.history = slices.Insert(e.history, 0, historyEntry{Spec: p.Spec, Result: *p})
			e.history = e.history[:min(len(e.history), maxHistory)]
			saveHistory(ctx, e.history)
			e.refreshHeat(ctx)
		case *protocol.Error:
			e.fileError(p)
		}
		e.runPending(ctx) // a link opened while this run was under way
		return
	}
	switch p := m.Payload.(type) {
	case *protocol.Hello:
		e.hello = p
		// Every hello follows a (re)connect, which a deployment causes:
		// ask the service worker to look for a newer build of the page
		// (OnAppUpdate then offers it), so that a tab left open learns of
		// one without being reloaded.
		app.TryUpdate()
		if e.problem = helloProblem(p); e.problem != "" {
			return
		}
		// Images that failed while the server was away load again.
		ctx.Defer(func(app.Context) { reloadBrokenImages() })
		e.runPending(ctx)
	case *protocol.Error:
		if m.ID == "" {
			e.problem = p.Message
		}
	}
}

// runPending runs the edit of a link opened while the server could not
// run it yet (not connected, no hello) or while another run was under
// way, once it can.
func (e *Editor) runPending(ctx app.Context) {
	if e.autoRun && e.serverReady() && !e.run.active() {
		e.autoRun = false
		e.startRun(ctx)
	}
}

// fileError puts a refused run's problems next to the spec fields they
// concern, worded like the editor's own checks. Errors about anything else
// (the envelope's id, type, data or v) are the status line's only: filed
// under a key no control shows, they would refuse every later Run until a
// field changed.
func (e *Editor) fileError(p *protocol.Error) {
	e.serverErrors = map[string]string{}
	photo := e.spec.Image != ""
	for _, pr := range p.Problems {
		if field, ok := specFieldKey(pr.Field); ok {
			e.serverErrors[field] = sentence(fieldLabel(field, photo), pr.Message)
		}
	}
	if field, ok := specFieldKey(p.Field); ok && len(p.Problems) == 0 {
		e.serverErrors[field] = p.Message
	}
}

func (e *Editor) handlePreview(ctx app.Context, p protocol.Preview) {
	if e.run.preview(p) && e.shown == e.run {
		ctx.Defer(func(app.Context) { drawPreview(p) })
	}
}

// startRun sends the current edit, or says why it cannot: a refused Run
// leaves the results on screen as they are.
func (e *Editor) startRun(ctx app.Context) {
	if e.run.active() || e.tok == nil {
		return
	}
	if probs := e.problems(); len(probs) > 0 {
		e.refused = probs[0].Sentence
		if len(probs) > 1 {
			e.refused += fmt.Sprintf(" (%d more problems are marked below.)", len(probs)-1)
		}
		return
	}
	spec := runnable(e.tok, e.spec)
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
	e.refused = ""
	e.serverErrors = nil
	e.run = &runState{ID: id, Spec: spec, Phase: phaseSent}
	e.status = e.run
	// On a phone the status and the images are below the form.
	ctx.Defer(func(app.Context) { scrollIntoViewIfHidden("run-status") })
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

// downloadAll saves the images on screen, their spec and link as one zip.
func (e *Editor) downloadAll(ctx app.Context) {
	shown := e.shown
	if shown == nil || shown.Result == nil {
		return
	}
	rows, res, photo := slices.Clone(shown.Rows), shown.Result, shown.Spec.Image != ""
	socketURL := wsURL() // read on the page's goroutine
	e.downloadNote = "Preparing the download…"
	ctx.Async(func() {
		files, err := runFiles(rows, photo, res, func(u string) ([]byte, error) { return fetchBytes(backendURL(socketURL, u)) })
		var data []byte
		if err == nil {
			data, err = buildZip(files, time.Now())
		}
		ctx.Dispatch(func(ctx app.Context) {
			if err != nil {
				e.downloadNote = "The download failed: " + err.Error()
				return
			}
			name := zipName(res)
			saveFile(ctx, name, "application/zip", data)
			e.downloadNote = "Saved " + name + "."
		})
	})
}

// imageURL resolves a result URL against the backend.
func (e *Editor) imageURL(u string) string { return backendURL(wsURL(), u) }

// reloadBrokenImages loads again every image of the page that failed
// (their URLs failed while the server was down): setting src, even to the
// same URL, makes the browser fetch it again.
func reloadBrokenImages() {
	imgs := app.Window().Get("document").Call("querySelectorAll", "img")
	for i := 0; i < imgs.Length(); i++ {
		img := imgs.Index(i)
		if src := img.Get("src").String(); src != "" && img.Get("complete").Bool() && img.Get("naturalWidth").Int() == 0 {
			img.Set("src", src)
		}
	}
}

// scrollIntoViewIfHidden brings an element into view when it is outside
// the window, gently unless the user asked for reduced motion.
func scrollIntoViewIfHidden(id string) {
	el := app.Window().GetElementByID(id)
	if !el.Truthy() {
		return
	}
	r := el.Call("getBoundingClientRect")
	if top, bottom := r.Get("top").Float(), r.Get("bottom").Float(); top >= 0 && bottom <= app.Window().Get("innerHeight").Float() {
		return
	}
	behavior := "smooth"
	if app.Window().Call("matchMedia", "(prefers-reduced-motion: reduce)").Get("matches").Bool() {
		behavior = "auto"
	}
	el.Call("scrollIntoView", map[string]any{"block": "start", "behavior": behavior})
}

// helloProblem is why this page cannot run against the server that said
// hello ("" when it can): another protocol, or another meaning of the
// spec's fields, under which this page's links would open as other edits
// than the server ran.
func helloProblem(h *protocol.Hello) string {
	switch {
	case h.Protocol != protocol.Version:
		return fmt.Sprintf("The server speaks protocol %d; this page speaks %d. Reload the page.", h.Protocol, protocol.Version)
	case h.Meaning != edit.MeaningVersion:
		return fmt.Sprintf("The server is another Reword build than this page: its settings mean other edits (version %d there, %d here), "+
			"so this page's links would not reproduce its images. Reload the page.", h.Meaning, edit.MeaningVersion)
	}
	return ""
}
