package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"reword/shared/edit"
	"reword/shared/limits"
)

// Upload takes a photo to edit (file picker or drag and drop), sends it to
// the server, and offers the inversion methods.
type Upload struct {
	app.Compo

	// Image is the uploaded photo's hash in the spec ("" for none);
	// PreviewURL shows it.
	Image, PreviewURL string
	Inversion         string
	// UploadURL is the backend's POST /api/images address.
	UploadURL string
	Errors    map[string]string

	OnUploaded  func(ctx app.Context, hash, previewURL string)
	OnInversion func(ctx app.Context, method string)
	OnClear     func(ctx app.Context)

	dragging bool
	busy     bool
	problem  string
}

// Render draws the drop zone, or the photo with its settings.
func (u *Upload) Render() app.UI {
	return app.Section().ID("upload").Class("upload").Aria("label", "Photo").Body(
		app.If(u.Image == "", func() app.UI {
			cls := "drop-zone"
			if u.dragging {
				cls += " dragging"
			}
			return app.Label().ID("drop-zone").Class(cls).For("upload-input").
				OnDragOver(func(ctx app.Context, e app.Event) { e.PreventDefault(); u.dragging = true }).
				OnDragLeave(func(ctx app.Context, e app.Event) { u.dragging = false }).
				OnDrop(func(ctx app.Context, e app.Event) {
					e.PreventDefault()
					u.dragging = false
					if files := e.Get("dataTransfer").Get("files"); files.Length() > 0 {
						u.take(ctx, files.Index(0))
					}
				}).
				Body(
					app.Span().Text("Edit a photo: drop it here or "),
					app.Span().Class("link-like").Text("choose a file"),
					app.Input().ID("upload-input").Class("visually-hidden").Type("file").Accept("image/png,image/jpeg,image/webp").
						Disabled(u.busy).
						OnChange(func(ctx app.Context, e app.Event) {
							if files := ctx.JSSrc().Get("files"); files.Length() > 0 {
								u.take(ctx, files.Index(0))
							}
						}),
				)
		}).Else(func() app.UI {
			return app.Div().Class("photo-settings").Body(
				app.Img().ID("photo-crop").Class("crop").Src(u.PreviewURL).
					Alt("the photo, cropped to the square the model edits"),
				app.Div().Class("field").Body(
					app.Label().For("inversion").Text("Inversion"),
					app.Select().ID("inversion").
						OnChange(func(ctx app.Context, e app.Event) { u.OnInversion(ctx, ctx.JSSrc().Get("value").String()) }).
						Body(app.Range(edit.Inversions).Slice(func(i int) app.UI {
							m := edit.Inversions[i]
							return app.Option().Value(m).Selected(u.Inversion == m).Text(inversionLabel(m))
						})),
					fieldError(u.Errors, "inversion"),
				),
				app.Button().ID("clear-photo").Class("secondary").Type("button").Text("Remove photo").
					OnClick(func(ctx app.Context, e app.Event) { u.OnClear(ctx) }),
				fieldError(u.Errors, "image"),
			)
		}),
		app.If(u.busy, func() app.UI { return app.P().ID("upload-status").Class("hint").Text("Uploading…") }),
		app.If(u.problem != "", func() app.UI {
			return app.P().ID("upload-problem").Class("field-error").Role("alert").Text(u.problem)
		}),
	)
}

func inversionLabel(m string) string {
	switch m {
	case edit.InversionDirect:
		return "Direct inversion (best)"
	case edit.InversionNPI:
		return "Negative-prompt inversion (fast)"
	case edit.InversionDDIM:
		return "Plain DDIM (baseline)"
	}
	return m
}

// busyNote is what a photo dropped while another uploads gets.
const busyNote = "A photo is still uploading: drop this one again once it is done."

// take uploads a chosen or dropped File, one at a time: two uploads at
// once would race, the last to finish winning even if it is the older
// photo. The file picker is disabled meanwhile; a drop is refused in words.
func (u *Upload) take(ctx app.Context, file app.Value) {
	if u.busy {
		u.problem = busyNote
		return
	}
	u.send(ctx, file)
}

// send reads a File and posts it to the server. The object URL that shows
// it goes to OnUploaded, whose owner frees it; a failed upload frees it
// here.
func (u *Upload) send(ctx app.Context, file app.Value) {
	size := file.Get("size").Int()
	if size > limits.UploadBytes {
		u.problem = fmt.Sprintf("The photo is %.1f MB; the limit is %d MB.", float64(size)/1e6, limits.UploadBytes>>20)
		return
	}
	u.busy, u.problem = true, ""
	typ := file.Get("type").String()
	previewURL := app.Window().Get("URL").Call("createObjectURL", file).String()
	var onRead, onFail app.Func
	release := func() { onRead.Release(); onFail.Release() }
	onRead = app.FuncOf(func(this app.Value, args []app.Value) any {
		defer release()
		buf := app.Window().Get("Uint8Array").New(args[0])
		b := make([]byte, buf.Length())
		app.CopyBytesToGo(b, buf)
		ctx.Async(func() {
			hash, err := postImage(u.UploadURL, typ, b)
			ctx.Dispatch(func(ctx app.Context) {
				u.busy = false
				if err != nil {
					revokeObjectURL(previewURL)
					u.problem = err.Error()
					return
				}
				u.problem = "" // a drop refused meanwhile no longer applies
				u.OnUploaded(ctx, hash, previewURL)
			})
		})
		return nil
	})
	onFail = app.FuncOf(func(this app.Value, args []app.Value) any {
		defer release()
		ctx.Dispatch(func(ctx app.Context) {
			revokeObjectURL(previewURL)
			u.busy = false
			u.problem = "The browser could not read the file."
		})
		return nil
	})
	file.Call("arrayBuffer").Call("then", onRead, onFail)
}

// isObjectURL reports whether a URL is one of createObjectURL's, which
// keeps its file in memory until revoked.
func isObjectURL(u string) bool { return strings.HasPrefix(u, "blob:") }

// revokeObjectURL frees an object URL's file.
func revokeObjectURL(u string) {
	app.Window().Get("URL").Call("revokeObjectURL", u)
}

// postImage uploads a photo (raw body) and returns its hash.
func postImage(url, contentType string, body []byte) (string, error) {
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	resp, err := http.Post(url, contentType, bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("could not reach the server to upload the photo: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", fmt.Errorf("reading the server's answer to the upload: %w", err)
	}
	var answer struct {
		Hash    string `json:"hash"`
		Message string `json:"message"`
		Error   string `json:"error"`
	}
	jsonErr := json.Unmarshal(data, &answer)
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		msg := strings.TrimSpace(answer.Message + " " + answer.Error)
		if jsonErr != nil || msg == "" {
			msg = strings.TrimSpace(string(data))
		}
		return "", fmt.Errorf("the server refused the photo (%s): %s", resp.Status, msg)
	}
	if jsonErr != nil || answer.Hash == "" {
		return "", fmt.Errorf("the server's answer to the upload has no hash: %q", data)
	}
	return answer.Hash, nil
}
