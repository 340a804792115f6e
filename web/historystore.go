package web

import (
	"regexp"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"reword/shared/edit"
)

// historyKey is where the browser keeps the history (local storage of the
// page's origin). The version changes when the stored form or the meaning
// of its specs does; an unreadable history is dropped, never an error. An
// earlier history is read once, through earlierHistories, and moved.
const historyKey = "reword.history.v6"

// earlierHistories are the keys of the histories earlier builds kept,
// newest first, each with what turns its entries into current ones.
var earlierHistories = []struct {
	key     string
	convert func([]historyEntry) []historyEntry
}{
	{"reword.history.v5", fromV5},
	{"reword.history.v4", func(e []historyEntry) []historyEntry { return fromV5(fromV4(e)) }},
	{"reword.history.v3", func(e []historyEntry) []historyEntry { return fromV5(fromV4(fromV3(e))) }},
	{"reword.history.v2", func(e []historyEntry) []historyEntry { return fromV5(fromV4(fromV3(fromV2(e)))) }},
}

// fromV5 turns a v5 history into v6: no v5 entry blended its reweights on
// their words unless it says so (before the tiny model's default), so
// each states it and restores as it ran.
func fromV5(entries []historyEntry) []historyEntry {
	return withSpecs(entries, edit.BeforeReweightBlend)
}

// fromV4 turns a v4 history into v5: no v4 entry blended on the changed
// words or decoded with the source's statistics unless it says so (before
// the tiny model's defaults for both), so each states them and restores
// as it ran.
func fromV4(entries []historyEntry) []historyEntry {
	return withSpecs(entries, edit.BeforeBlendDefaults)
}

// fromV3 turns a v3 history into v4: every v3 entry ran with its swapped
// words at its cross window (before the tiny model's cross_changed
// default), so each states that window and restores as it ran.
func fromV3(entries []historyEntry) []historyEntry {
	return withSpecs(entries, edit.BeforeCrossChanged)
}

// fromV2 turns a v2 history into v3: every v2 entry ran without a norm
// window unless it states one (a server before the norm default echoed
// it only when set), so one that states none gets an explicit 0 and
// restores as it ran. An entry that states one ran the source's mean and
// variance (link version 2); it is kept as stored, its images being what
// ran, and a run from it takes the mean alone.
func fromV2(entries []historyEntry) []historyEntry {
	return withSpecs(entries, edit.BeforeNormDefault)
}

// withSpecs is entries with each spec passed through f: the one the entry
// restores and the one its result ran (shown as run and downloaded, so it
// must say what reproduces the images); entries is not changed.
func withSpecs(entries []historyEntry, f func(edit.Spec) edit.Spec) []historyEntry {
	out := make([]historyEntry, len(entries))
	for i, e := range entries {
		e.Spec = f(e.Spec)
		e.Result.Spec = f(e.Result.Spec)
		out[i] = e
	}
	return out
}

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

// loadHistory reads the history the browser kept, moving an earlier
// build's the first time.
func loadHistory(ctx app.Context) []historyEntry {
	var stored []historyEntry
	if err := ctx.LocalStorage().Get(historyKey, &stored); err == nil && len(stored) > 0 {
		return fromStorage(stored)
	}
	for _, h := range earlierHistories {
		var earlier []historyEntry
		if err := ctx.LocalStorage().Get(h.key, &earlier); err != nil || len(earlier) == 0 {
			continue
		}
		entries := fromStorage(h.convert(earlier))
		saveHistory(ctx, entries)
		ctx.LocalStorage().Del(h.key)
		return entries
	}
	return nil
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
