package web

import (
	"strconv"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"reword/shared/edit"
	"reword/shared/protocol"
)

// maxHistory bounds the strip; older results drop off the end.
const maxHistory = 24

// historyEntry is one finished run: the spec it ran (every default filled
// in, as the server echoed it) and its result.
type historyEntry struct {
	Spec   edit.Spec       `json:"spec"`
	Result protocol.Result `json:"result"`
}

// thumbnail is the entry's first edited image, or its source if it has none.
func (h historyEntry) thumbnail() (protocol.Image, bool) {
	var best protocol.Image
	found := false
	for _, img := range h.Result.Images {
		if !found || (best.Row == 0 && img.Row > 0) {
			best, found = img, true
		}
	}
	return best, found
}

// caption is what a thumbnail says: the first edited prompt (or the
// source) and the seed.
func (h historyEntry) caption() (prompt, seed string) {
	prompt = h.Spec.Source
	if len(h.Spec.Targets) > 0 {
		prompt = h.Spec.Targets[0]
		if n := len(h.Spec.Targets); n > 1 {
			prompt += " (+" + strconv.Itoa(n-1) + ")"
		}
	}
	if h.Spec.Seed != nil {
		seed = "seed " + strconv.FormatUint(*h.Spec.Seed, 10)
	}
	return prompt, seed
}

// restoreSpec is the spec that opening the entry puts back in the editor:
// every setting as it ran, on whatever model the server runs now.
func (h historyEntry) restoreSpec() edit.Spec {
	s := h.Spec.Clone()
	s.Model = ""
	return s
}

// History is the grid of past results, newest first; choosing one
// restores its settings and images. Every entry stays reachable: the grid
// wraps instead of scrolling sideways.
type History struct {
	app.Compo

	Entries  []historyEntry
	ImageURL func(string) string
	OnOpen   func(ctx app.Context, i int)
	OnClear  func(ctx app.Context)
}

// Render draws the grid.
func (h *History) Render() app.UI {
	if len(h.Entries) == 0 {
		return app.Section().ID("history").Class("history empty").Aria("label", "History").Body(
			app.P().Class("hint").Text("Your results appear here, and stay after a reload."),
		)
	}
	return app.Section().ID("history").Class("history").Aria("label", "History").Body(
		app.Div().Class("history-head").Body(
			app.H2().Text("History"),
			app.Button().ID("history-clear").Class("secondary small").Type("button").
				OnClick(func(ctx app.Context, e app.Event) { h.OnClear(ctx) }).Text("Clear"),
		),
		app.Ol().Class("history-grid").Body(
			app.Range(h.Entries).Slice(func(i int) app.UI {
				e := h.Entries[i]
				img, ok := e.thumbnail()
				prompt, seed := e.caption()
				label := e.Spec.Source + " → " + prompt
				if seed != "" {
					label += ", " + seed
				}
				return app.Li().Body(
					app.Button().ID("history-"+strconv.Itoa(i)).Class("history-item").Type("button").
						Title(label).Aria("label", "Open "+label).
						OnClick(func(ctx app.Context, ev app.Event) { h.OnOpen(ctx, i) }, app.EventScope(i)).
						Body(
							app.If(ok, func() app.UI {
								return app.Img().Src(h.ImageURL(img.URL)).Alt("").Width(64).Height(64)
							}),
							app.Span().Class("history-prompt").Text(prompt),
							app.Span().Class("history-seed").Text(seed),
						),
				)
			}),
		),
	)
}
