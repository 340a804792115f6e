package web

import (
	"fmt"
	"strings"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"reword/shared/edit"
)

// linkFromPage returns the edit link in the page's URL fragment, if any.
func linkFromPage(ctx app.Context) string {
	return strings.TrimPrefix(ctx.Page().URL().Fragment, "#")
}

// specFromLink decodes an edit link. A link without a seed gets a random
// one, so that the editor always has a reproducible spec.
func specFromLink(link string) (edit.Spec, error) {
	s, err := edit.DecodeLink(link)
	if err != nil {
		return edit.Spec{}, fmt.Errorf("This edit link cannot be opened: %v", err)
	}
	if s.Seed == nil {
		seed := randomSeed()
		s.Seed = &seed
	}
	if len(s.Targets) == 0 {
		s.Targets = []string{s.Source}
	}
	return s, nil
}

// replaceURL writes the spec's link into the address bar without adding a
// history entry, so that reloading or copying the URL keeps the edit.
func replaceURL(link string) {
	loc := app.Window().Get("location")
	u := loc.Get("pathname").String() + loc.Get("search").String() + "#" + link
	app.Window().Get("history").Call("replaceState", nil, "", u)
}

// pageLink is the full URL of the page with the given link fragment.
func pageLink(link string) string {
	loc := app.Window().Get("location")
	return loc.Get("origin").String() + loc.Get("pathname").String() + "#" + link
}

// copyToClipboard copies text, then calls done with whether it worked
// (clipboard access needs a secure context and the user's permission).
func copyToClipboard(ctx app.Context, text string, done func(ctx app.Context, ok bool)) {
	clip := app.Window().Get("navigator").Get("clipboard")
	if !clip.Truthy() {
		done(ctx, false)
		return
	}
	var onOK, onFail app.Func
	finish := func(ok bool) {
		onOK.Release()
		onFail.Release()
		ctx.Dispatch(func(ctx app.Context) { done(ctx, ok) })
	}
	onOK = app.FuncOf(func(app.Value, []app.Value) any { finish(true); return nil })
	onFail = app.FuncOf(func(app.Value, []app.Value) any { finish(false); return nil })
	clip.Call("writeText", text).Call("then", onOK, onFail)
}
