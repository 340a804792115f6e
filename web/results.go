package web

import (
	"strconv"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"reword/shared/protocol"
)

// Results shows one run: a tile per row with its streamed preview, a
// progress bar, then the final image, and a canvas on top for heat maps.
// With a photo, the photo comes first so the reconstruction sits next to it.
// Each edit compares with the source under a slider; a button downloads
// every image at once.
type Results struct {
	app.Compo

	Rows []rowView
	// PhotoURL shows the uploaded photo before the rows ("" for none).
	PhotoURL string
	// ImageURL resolves a result image's URL against the backend.
	ImageURL func(string) string
	// Seed is the run's seed, shown on every card ("" when unknown).
	Seed string
	// DownloadNote says how the last "Download all" went.
	DownloadNote  string
	OnDownloadAll func(ctx app.Context)

	// compare is, per row, how much of the source the comparison slider
	// shows over the edit, in percent from the left.
	compare map[int]int
}

// Render draws the tiles.
func (r *Results) Render() app.UI {
	done := false
	for _, row := range r.Rows {
		done = done || row.Image != nil
	}
	return app.Section().ID("results").Class("results").Aria("label", "Images").Body(
		app.If(done, func() app.UI {
			return app.Div().Class("results-bar").Body(
				app.Button().ID("download-all").Class("secondary").Type("button").
					Title("Every image of this run and its settings, in one zip file").
					OnClick(func(ctx app.Context, e app.Event) { r.OnDownloadAll(ctx) }).
					Text("Download all"),
				app.If(r.DownloadNote != "", func() app.UI {
					return app.Span().ID("download-note").Class("hint").Aria("live", "polite").Text(r.DownloadNote)
				}),
			)
		}),
		app.If(r.PhotoURL != "", func() app.UI {
			return app.Figure().Class("tile photo").Body(
				app.Div().Class("frame").Body(
					app.Img().ID("photo").Src(r.PhotoURL).Alt("the uploaded photo, cropped as the model sees it"),
				),
				app.FigCaption().Text("Photo"),
			)
		}),
		app.Range(r.Rows).Slice(func(i int) app.UI { return r.renderRow(r.Rows[i]) }),
	)
}

// rowLabel is what the results call a row: the names the form uses.
func rowLabel(row rowView, photo bool) string {
	switch {
	case row.Role == protocol.RoleTarget:
		return editName(row.Index - 1)
	case photo:
		return "Reconstruction"
	}
	return "Source"
}

func (r *Results) renderRow(row rowView) app.UI {
	n := strconv.Itoa(row.Index)
	label := rowLabel(row, r.PhotoURL != "")
	hash := ""
	if row.Image != nil {
		hash = row.Image.Hash
	}
	source := r.sourceImage()
	compare := row.Role == protocol.RoleTarget && row.Image != nil && source != nil
	shown := r.compare[row.Index]
	return app.Figure().ID("row-"+n).Class("tile").
		DataSet("row", row.Index).DataSet("hash", hash).DataSet("step", row.Step).
		Body(
			app.Div().Class("frame").Body(
				app.Canvas().ID(previewCanvasID(row.Index)).Class("preview").
					Aria("label", "preview of "+row.Prompt),
				app.If(row.Image != nil, func() app.UI {
					return app.Img().ID("final-" + n).Class("final").
						Src(r.ImageURL(row.Image.URL)).Alt(row.Prompt).
						Width(row.Image.Width).Height(row.Image.Height)
				}),
				app.If(compare && shown > 0, func() app.UI {
					return app.Div().Class("compare-layer").Body(
						app.Img().ID("compare-source-"+n).Class("compare-source").
							Src(r.ImageURL(source.URL)).Alt("the source image").
							Style("clip-path", "inset(0 "+strconv.Itoa(100-shown)+"% 0 0)"),
						app.Div().Class("compare-line").Style("left", strconv.Itoa(shown)+"%"),
					)
				}),
				app.Canvas().ID(heatCanvasID(row.Index)).Class("heat").Aria("hidden", true),
				// Filled and shown by drawHeat while a word is hovered or pinned.
				app.Div().ID(heatLegendID(row.Index)).Class("heat-legend").Hidden(true).
					Title("attention of the word, each map scaled to its own peak").Body(
					app.Div().Class("heat-title").Body(
						app.Strong().Class("heat-word"),
						app.Span().Class("heat-pin"),
						app.Span().Class("heat-grid"),
					),
					app.Div().Class("heat-scale-row").Body(
						app.Span().Text("0"),
						app.Span().Class("heat-scale").Style("background", heatGradientCSS()),
						app.Span().Text("peak"),
					),
				),
			),
			app.Progress().ID("progress-"+n).Max(max(row.Total, 1)).Value(row.Step).
				Aria("label", label+" progress"),
			app.If(compare, func() app.UI {
				// The slider moves the divider: the source shows left of it,
				// so its far end (right) is all source.
				return app.Label().Class("compare").Body(
					app.Span().Class("hint").Text("edit"),
					app.Input().ID("compare-"+n).Type("range").Min(0).Max(100).Step(1).Value(shown).
						Aria("label", "Compare "+label+" with the source: how much of the source to show").
						OnInput(func(ctx app.Context, e app.Event) {
							v, err := strconv.Atoi(ctx.JSSrc().Get("value").String())
							if err != nil {
								return
							}
							if r.compare == nil {
								r.compare = map[int]int{}
							}
							r.compare[row.Index] = min(max(v, 0), 100)
						}, app.EventScope(row.Index)),
					app.Span().Class("hint").Text("source"),
				)
			}),
			app.FigCaption().Body(
				app.Div().Class("caption-head").Body(
					app.Strong().Text(label),
					app.If(r.Seed != "", func() app.UI {
						return app.Span().Class("seed").Text("seed " + r.Seed)
					}),
					app.If(row.Image != nil, func() app.UI {
						return app.A().Class("download").Href(r.ImageURL(row.Image.URL)).
							Attr("download", downloadName(row, r.PhotoURL != "", ".png")).Text("PNG")
					}),
				),
				// Clamped to two lines; the whole prompt on hover.
				app.Span().Class("row-prompt").Title(row.Prompt).Text(row.Prompt),
			),
		)
}

// sourceImage is the run's source (or reconstruction) image, once it
// arrived.
func (r *Results) sourceImage() *protocol.Image {
	for _, row := range r.Rows {
		if row.Role == protocol.RoleSource && row.Image != nil {
			return row.Image
		}
	}
	return nil
}
