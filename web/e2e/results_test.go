//go:build e2e

package e2e

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
)

// TestWhatSDUsersExpect is item 10 of issue 20: each edit compares with
// the source under a slider, every card says its seed, long prompts do
// not stretch the cards, and one button downloads every result.
func TestWhatSDUsersExpect(t *testing.T) {
	ctx := tab(t)
	openEditor(t, ctx, srv.URL+"/")
	long := "a blue circle" + strings.Repeat(" on a very large and very wide white background", 6)
	setPrompt(t, ctx, "target-0", "a blue circle")
	clickWhenThere(t, ctx, "#add-target")
	poll(t, ctx, `!!document.querySelector('#target-1')`, 5*time.Second)
	setPrompt(t, ctx, "target-1", long)
	setField(t, ctx, "seed", "77")
	setField(t, ctx, "steps", "5")
	hashes := runAndWait(t, ctx, 3)

	for _, row := range []string{"0", "1", "2"} {
		if s := mustEval[string](t, ctx, `document.querySelector('#row-`+row+` .seed').textContent`); s != "seed 77" {
			t.Errorf("card %s says %q", row, s)
		}
	}
	// The long prompt is clamped, whole on hover, and both edits' cards
	// are the same height.
	caption := mustEval[map[string]any](t, ctx, `(() => { const p = document.querySelector('#row-2 .row-prompt');
		return {clamped: p.scrollHeight > p.clientHeight + 1, title: p.title,
			same: document.querySelector('#row-1').offsetHeight === document.querySelector('#row-2').offsetHeight} })()`)
	if caption["clamped"] != true || caption["title"] != long || caption["same"] != true {
		t.Errorf("long prompt caption %v", caption)
	}

	// The slider shows the source over the edit, from the left.
	if mustEval[bool](t, ctx, `!!document.querySelector('#compare-source-1')`) {
		t.Error("the comparison shows before the slider moves")
	}
	typeInto(t, ctx, "compare-1", "50", "input")
	poll(t, ctx, `!!document.querySelector('#compare-source-1')`, 5*time.Second)
	cmp := mustEval[map[string]string](t, ctx, `(() => { const c = document.querySelector('#compare-source-1');
		return {src: c.src, final: document.querySelector('#final-0').src, clip: getComputedStyle(c).clipPath} })()`)
	if cmp["src"] != cmp["final"] || !strings.Contains(cmp["clip"], "50%") {
		t.Errorf("comparison %v; want the source image clipped at 50%%", cmp)
	}
	poll(t, ctx, `document.querySelector('#compare-source-1').complete && document.querySelector('#compare-source-1').naturalWidth > 0`, 10*time.Second)

	// Download all: one zip with every image (the very PNGs the server
	// stored), the spec and the link.
	dir := t.TempDir()
	_, err := chromedp.CallBrowser(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllow, DownloadPath: dir})
	must(t, err)
	defer chromedp.CallBrowser(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{Behavior: cdpbrowser.SetDownloadBehaviorBehaviorDefault})
	clickWhenThere(t, ctx, "#download-all")
	path := filepath.Join(dir, "reword-seed-77.zip")
	var zr *zip.ReadCloser
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if zr, err = zip.OpenReader(path); err == nil {
			break
		}
		if time.Now().After(deadline) {
			entries, _ := os.ReadDir(dir)
			t.Fatalf("no complete %s after 30 s (%v; the folder holds %v; note %q)", path, err, entries,
				mustEval[string](t, ctx, `document.querySelector('#download-note')?.textContent ?? ''`))
		}
	}
	defer zr.Close()
	got := map[string]string{}
	for _, f := range zr.File {
		r, err := f.Open()
		must(t, err)
		data, err := io.ReadAll(r)
		must(t, err)
		r.Close()
		sum := sha256.Sum256(data)
		got[f.Name] = hex.EncodeToString(sum[:])
		if f.Name == "spec.json" && !strings.Contains(string(data), `"seed": 77`) {
			t.Errorf("spec.json: %s", data)
		}
	}
	for i, name := range []string{"source.png", "edit-1.png", "edit-2.png"} {
		if got[name] != hashes[i] {
			t.Errorf("%s in the zip has sha256 %s; the server's image is %s", name, got[name], hashes[i])
		}
	}
	if _, ok := got["link.txt"]; !ok || len(got) != 5 {
		t.Errorf("zip holds %v", got)
	}
}
