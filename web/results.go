package web

import (
	"strconv"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"reword/shared/protocol"
)

// Results shows one run: a tile per row with its streamed preview, a
// progress bar, then the final image, and a canvas on top for heat maps.
// With a photo, the photo comes first so the reconstruction sits next to it.
type Results struct {
	app.Compo

	Rows []rowView
	// PhotoURL shows the uploaded photo before the rows ("" for none).
	PhotoURL string
	// ImageURL resolves a result image's URL against the backend.
	ImageURL func(string) string
}

// Render draws the tiles.
func (r *Results) Render() app.UI {
	return app.Section().ID("results").Class("results").Aria("label", "Images").Body(
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

func (r *Results) renderRow(row rowView) app.UI {
	n := strconv.Itoa(row.Index)
	label := "Source"
	switch {
	case row.Role == protocol.RoleSource && r.PhotoURL != "":
		label = "Reconstruction"
	case row.Role == protocol.RoleTarget:
		label = "Edit " + n
	}
	hash := ""
	if row.Image != nil {
		hash = row.Image.Hash
	}
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
				app.Canvas().ID(heatCanvasID(row.Index)).Class("heat").Aria("hidden", true),
				// Filled and shown by drawHeat while a word is hovered.
				app.Div().ID(heatLegendID(row.Index)).Class("heat-legend").Hidden(true).
					Title("attention of the hovered word, each map scaled to its own peak").Body(
					app.Div().Class("heat-title").Body(
						app.Strong().Class("heat-word"),
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
			app.FigCaption().Body(
				app.Strong().Text(label),
				app.Span().Class("row-prompt").Text(" "+row.Prompt),
				app.If(row.Image != nil, func() app.UI {
					return app.A().Class("download").Href(r.ImageURL(row.Image.URL)).
						Attr("download", "reword-"+hash[:min(12, len(hash))]+".png").Text("PNG")
				}),
			),
		)
}
