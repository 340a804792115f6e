package web

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"reword/shared/protocol"
)

// maxDownloadImageBytes bounds one image fetched for "Download all".
const maxDownloadImageBytes = 64 << 20

// zipFile is one file of the "Download all" archive.
type zipFile struct {
	Name string
	Data []byte
}

// downloadName is a row's file name: source.png (reconstruction.png for a
// photo), edit-1.png, ….
func downloadName(row rowView, photo bool, ext string) string {
	return strings.ToLower(strings.ReplaceAll(rowLabel(row, photo), " ", "-")) + ext
}

// zipName names the archive of a run after its seed.
func zipName(res *protocol.Result) string {
	if res.Spec.Seed != nil {
		return fmt.Sprintf("reword-seed-%d.zip", *res.Spec.Seed)
	}
	return "reword.zip"
}

// buildZip writes the files into a zip archive. PNGs are stored as they
// are (they are compressed already); the rest is deflated.
func buildZip(files []zipFile, modified time.Time) ([]byte, error) {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range files {
		method := zip.Deflate
		if strings.HasSuffix(f.Name, ".png") {
			method = zip.Store
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.Name, Method: method, Modified: modified})
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(f.Data); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// runFiles is the archive of a finished run: each image, the spec as run
// (spec.json) and its edit link (link.txt), fetched through get.
func runFiles(rows []rowView, photo bool, res *protocol.Result, get func(url string) ([]byte, error)) ([]zipFile, error) {
	var files []zipFile
	for _, row := range rows {
		if row.Image == nil {
			continue
		}
		data, err := get(row.Image.URL)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", rowLabel(row, photo), err)
		}
		files = append(files, zipFile{Name: downloadName(row, photo, ".png"), Data: data})
	}
	spec, err := json.MarshalIndent(res.Spec, "", "  ")
	if err != nil {
		return nil, err
	}
	files = append(files, zipFile{Name: "spec.json", Data: append(spec, '\n')})
	if res.Link != "" {
		files = append(files, zipFile{Name: "link.txt", Data: []byte(pageLink(res.Link) + "\n")})
	}
	return files, nil
}

// fetchBytes downloads one of the backend's images.
func fetchBytes(url string) ([]byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, fmt.Errorf("could not reach the server: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the server answered %s", resp.Status)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxDownloadImageBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxDownloadImageBytes {
		return nil, fmt.Errorf("the image is larger than %d MB", maxDownloadImageBytes>>20)
	}
	return data, nil
}

// saveFile hands data to the browser as a download named name.
func saveFile(ctx app.Context, name, mime string, data []byte) {
	arr := app.Window().Get("Uint8Array").New(len(data))
	app.CopyBytesToJS(arr, data)
	blob := app.Window().Get("Blob").New([]any{arr}, map[string]any{"type": mime})
	url := app.Window().Get("URL").Call("createObjectURL", blob)
	a := app.Window().Get("document").Call("createElement", "a")
	a.Set("href", url)
	a.Set("download", name)
	a.Get("style").Set("display", "none")
	body := app.Window().Get("document").Get("body")
	body.Call("appendChild", a)
	a.Call("click")
	body.Call("removeChild", a)
	// The browser reads the blob after the click returns.
	ctx.After(time.Minute, func(app.Context) { app.Window().Get("URL").Call("revokeObjectURL", url) })
}
