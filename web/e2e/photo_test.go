//go:build e2e

package e2e

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// writePhoto draws a red disc on white, a scene the tiny model knows, and
// saves it as a PNG.
func writePhoto(t *testing.T) string {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 96, 80)) // not square: the editor shows the crop
	for y := range 80 {
		for x := range 96 {
			c := color.RGBA{255, 255, 255, 255}
			if dx, dy := x-48, y-40; dx*dx+dy*dy < 20*20 {
				c = color.RGBA{220, 30, 30, 255}
			}
			img.Set(x, y, c)
		}
	}
	path := filepath.Join(t.TempDir(), "photo.png")
	f, err := os.Create(path)
	must(t, err)
	must(t, png.Encode(f, img))
	must(t, f.Close())
	return path
}

// TestPhotoFlow is flow 4: a PNG chosen with the file picker is uploaded,
// its crop shown, the caption is required, and the photo is inverted and
// edited, with the reconstruction next to the photo.
func TestPhotoFlow(t *testing.T) {
	ctx := tab(t)
	openEditor(t, ctx, srv.URL+"/")
	must(t, chromedp.Do(ctx, chromedp.SetUploadFiles(chromedp.CSS("#upload-input"), []string{writePhoto(t)})))
	poll(t, ctx, `document.querySelector('#photo-crop')?.complete && document.querySelector('#photo-crop').naturalWidth === 96`, 20*time.Second)
	if m := mustEval[string](t, ctx, `document.querySelector('#inversion').value`); m != "direct" {
		t.Errorf("inversion defaults to %q, want direct", m)
	}
	if l := mustEval[string](t, ctx, `document.querySelector('label[for=source]').textContent`); l != "Caption" {
		t.Errorf("the source prompt is labelled %q with a photo, want Caption", l)
	}
	// An empty caption is refused next to the field, before anything is sent.
	setPrompt(t, ctx, "source", "")
	must(t, chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#run"))))
	poll(t, ctx, `document.querySelector('.field-error[data-field=source]')`, 5*time.Second)

	setPrompt(t, ctx, "source", "a red circle")
	setPrompt(t, ctx, "target-0", "a blue circle")
	setField(t, ctx, "steps", "10")
	runAndWait(t, ctx, 2)
	if l := mustEval[string](t, ctx, `document.querySelector('#row-0 figcaption strong').textContent`); l != "Reconstruction" {
		t.Errorf("row 0 is labelled %q, want Reconstruction", l)
	}
	if !mustEval[bool](t, ctx, `!!document.querySelector('#results #photo')`) {
		t.Error("the photo is not shown next to the reconstruction")
	}
	poll(t, ctx, `document.querySelector('#final-1')?.complete && document.querySelector('#final-1').naturalWidth > 0`, 10*time.Second)
	spec := mustEval[string](t, ctx, `document.querySelector('#run-spec-json').textContent`)
	if !strings.Contains(spec, `"inversion": "direct"`) || !strings.Contains(spec, `"image": "`) {
		t.Errorf("the server ran %s; want the photo and direct inversion", spec)
	}
}
