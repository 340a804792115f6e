package web

import (
	"strconv"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"reword/shared/edit"
	"reword/shared/protocol"
)

// maxHistory bounds the strip; older results drop off the end.
const maxHistory = 24

// historyEntry is one finished run of this session.
type historyEntry struct {
	Spec   edit.Spec
	Result protocol.Result
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

// History is the strip of this session's results, newest first; choosing
// one restores its settings and images.
type History struct {
	app.Compo

	Entries  []historyEntry
	ImageURL func(string) string
	OnOpen   func(ctx app.Context, i int)
}

// Render draws the strip.
func (h *History) Render() app.UI {
	if len(h.Entries) == 0 {
		return app.Section().ID("history").Class("history empty").Aria("label", "History").Body(
			app.P().Class("hint").Text("Results of this session appear here."),
		)
	}
	return app.Section().ID("history").Class("history").Aria("label", "History").Body(
		app.Ol().Class("history-strip").Body(
			app.Range(h.Entries).Slice(func(i int) app.UI {
				e := h.Entries[i]
				img, ok := e.thumbnail()
				label := e.Spec.Source
				if len(e.Spec.Targets) > 0 {
					label += " → " + e.Spec.Targets[0]
				}
				return app.Li().Body(
					app.Button().ID("history-"+strconv.Itoa(i)).Class("history-item").Type("button").
						Title(label).Aria("label", "Open "+label).
						OnClick(func(ctx app.Context, ev app.Event) { h.OnOpen(ctx, i) }).
						Body(app.If(ok, func() app.UI {
							return app.Img().Src(h.ImageURL(img.URL)).Alt("").Width(64).Height(64)
						})),
				)
			}),
		),
	)
}
