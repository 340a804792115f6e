package web

import (
	"regexp"

	"github.com/maxence-charriere/go-app/v10/pkg/app"
)

// historyKey is where the browser keeps the history (local storage of the
// page's origin). The version changes when the stored form does; an old
// or unreadable history is dropped, never an error.
const historyKey = "reword.history.v2"

// storedImageURL is the only image URL a stored entry may carry: the
// server's content-addressed images.
var storedImageURL = regexp.MustCompile(`^/images/[0-9a-f]{64}\.png$`)

// forStorage is what the browser keeps of the history: entries without
// their heat maps (tens of kilobytes each, and local storage holds a few
// megabytes), at most maxHistory.
func forStorage(entries []historyEntry) []historyEntry {
	out := make([]historyEntry, 0, min(len(entries), maxHistory))
	for _, e := range entries[:min(len(entries), maxHistory)] {
		e.Result.HeatMaps = nil
		out = append(out, e)
	}
	return out
}

// fromStorage keeps the stored entries that can be shown: each needs
// prompts, a seed and images the server serves.
func fromStorage(entries []historyEntry) []historyEntry {
	var out []historyEntry
	for _, e := range entries {
		ok := e.Spec.Source != "" && len(e.Spec.Targets) > 0 && e.Spec.Seed != nil && len(e.Result.Images) > 0
		for _, img := range e.Result.Images {
			ok = ok && storedImageURL.MatchString(img.URL)
		}
		if ok {
			out = append(out, e)
		}
		if len(out) == maxHistory {
			break
		}
	}
	return out
}

// loadHistory reads the history the browser kept.
func loadHistory(ctx app.Context) []historyEntry {
	var stored []historyEntry
	if err := ctx.LocalStorage().Get(historyKey, &stored); err != nil {
		return nil
	}
	return fromStorage(stored)
}

// saveHistory keeps the history in the browser. When storage is full it
// keeps as many of the newest entries as fit, and nothing when none does.
func saveHistory(ctx app.Context, entries []historyEntry) {
	stored := forStorage(entries)
	for n := len(stored); n > 0; n /= 2 {
		if ctx.LocalStorage().Set(historyKey, stored[:n]) == nil {
			return
		}
	}
	ctx.LocalStorage().Del(historyKey)
}
