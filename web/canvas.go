package web

import (
	"strconv"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"reword/shared/protocol"
)

// Canvas element ids of a result row.
func previewCanvasID(row int) string { return "preview-" + strconv.Itoa(row) }
func heatCanvasID(row int) string    { return "heat-" + strconv.Itoa(row) }
func heatLegendID(row int) string    { return "heat-legend-" + strconv.Itoa(row) }

// drawPreview paints a preview frame onto its row's canvas: RGBA frames go
// straight to putImageData; PNG frames are decoded by the browser first.
func drawPreview(p protocol.Preview) {
	cv := app.Window().GetElementByID(previewCanvasID(p.Row))
	if !cv.Truthy() {
		return // the row is not on the page (an old run's frame)
	}
	switch p.Format {
	case protocol.FormatRGBA:
		putRGBA(cv, p.Width, p.Height, p.Pixels)
	case protocol.FormatPNG:
		drawPNG(cv, p.Width, p.Height, p.Pixels)
	}
}

// clearPreviews blanks the preview canvases of the rows.
func clearPreviews(rows []rowView) {
	for _, row := range rows {
		cv := app.Window().GetElementByID(previewCanvasID(row.Index))
		if !cv.Truthy() {
			continue
		}
		cv.Call("getContext", "2d").Call("clearRect", 0, 0, cv.Get("width").Int(), cv.Get("height").Int())
	}
}

// putRGBA sizes the canvas to w×h and writes the pixels.
func putRGBA(cv app.Value, w, h int, px []byte) {
	if cv.Get("width").Int() != w || cv.Get("height").Int() != h {
		cv.Set("width", w)
		cv.Set("height", h)
	}
	arr := app.Window().Get("Uint8ClampedArray").New(len(px))
	app.CopyBytesToJS(arr, px)
	img := app.Window().Get("ImageData").New(arr, w, h)
	cv.Call("getContext", "2d").Call("putImageData", img, 0, 0)
}

// drawPNG decodes a PNG with the browser's image decoder and draws it. A
// frame that fails to decode is skipped: the next one replaces it anyway.
func drawPNG(cv app.Value, w, h int, png []byte) {
	arr := app.Window().Get("Uint8Array").New(len(png))
	app.CopyBytesToJS(arr, png)
	blob := app.Window().Get("Blob").New([]any{arr}, map[string]any{"type": "image/png"})
	// Exactly one of the two runs; each releases both.
	var onDecoded, onFailed app.Func
	release := func() { onDecoded.Release(); onFailed.Release() }
	onDecoded = app.FuncOf(func(this app.Value, args []app.Value) any {
		defer release()
		if cv.Get("width").Int() != w || cv.Get("height").Int() != h {
			cv.Set("width", w)
			cv.Set("height", h)
		}
		cv.Call("getContext", "2d").Call("drawImage", args[0], 0, 0, w, h)
		return nil
	})
	onFailed = app.FuncOf(func(this app.Value, args []app.Value) any {
		defer release()
		return nil
	})
	app.Window().Call("createImageBitmap", blob).Call("then", onDecoded, onFailed)
}

// heatPixels colours a 0–255 attention map as RGBA overlay pixels.
func heatPixels(values []byte) []byte {
	px := make([]byte, len(values)*4)
	for i, v := range values {
		c := heatColour(v)
		copy(px[i*4:i*4+4], c[:])
	}
	return px
}

// drawHeat overlays word's w×h heat map on a row's image, smoothly
// upsampled to the overlay size for an iw×ih image, and shows the legend
// (the word, whether it is pinned, the map's grid, the colour scale); nil
// values clear both.
func drawHeat(row int, word string, pinned bool, w, h int, values []byte, iw, ih int) {
	cv := app.Window().GetElementByID(heatCanvasID(row))
	if !cv.Truthy() {
		return
	}
	legend := app.Window().GetElementByID(heatLegendID(row))
	if values == nil {
		cv.Call("getContext", "2d").Call("clearRect", 0, 0, cv.Get("width").Int(), cv.Get("height").Int())
		cv.Get("dataset").Set("word", "")
		cv.Get("dataset").Set("grid", "")
		cv.Get("dataset").Set("pinned", "")
		if legend.Truthy() {
			legend.Set("hidden", true)
		}
		return
	}
	ow, oh := heatOverlaySize(w, h, iw, ih)
	px := upsampleHeat(w, h, values, ow, oh)
	if px == nil {
		return
	}
	putRGBA(cv, ow, oh, heatPixels(px))
	grid := strconv.Itoa(w) + "×" + strconv.Itoa(h)
	pin := ""
	if pinned {
		pin = "pinned"
	}
	cv.Get("dataset").Set("word", word)
	cv.Get("dataset").Set("grid", grid)
	cv.Get("dataset").Set("pinned", pin)
	if legend.Truthy() {
		legend.Call("querySelector", ".heat-word").Set("textContent", word)
		legend.Call("querySelector", ".heat-pin").Set("textContent", pin)
		legend.Call("querySelector", ".heat-grid").Set("textContent", grid)
		legend.Set("hidden", false)
	}
}
