package web

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"reword/shared/edit"
	"reword/shared/protocol"
)

func entry(source, target string, seed uint64, hash string) historyEntry {
	spec := edit.Spec{Source: source, Targets: []string{target}, Seed: &seed, Steps: ptr(12), Guidance: ptr(9.0),
		Cross: ptr(edit.Fraction(0.7)), Self: ptr(edit.Fraction(0.3)), Negative: "blurry", Model: "tiny",
		Blend: []edit.Blend{{Words: []string{"circle"}}}}
	img := func(row int) protocol.Image {
		return protocol.Image{Row: row, Hash: hash, URL: "/images/" + hash + ".png", Width: 64, Height: 64}
	}
	return historyEntry{Spec: spec, Result: protocol.Result{Spec: spec, Images: []protocol.Image{img(0), img(1)},
		HeatMaps: []protocol.HeatMap{{Row: 1, Token: 2, Width: 16, Height: 16, Values: make([]byte, 256)}}}}
}

// TestHistoryStorage: the browser keeps every setting and image of each
// entry (not its heat maps), and shows only entries it can restore.
func TestHistoryStorage(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	var entries []historyEntry
	for i := range maxHistory + 3 {
		entries = append(entries, entry("a red circle", "a blue circle", uint64(i), hash))
	}
	stored := forStorage(entries)
	if len(stored) != maxHistory || stored[0].Result.HeatMaps != nil || entries[0].Result.HeatMaps == nil {
		t.Fatalf("stored %d entries, heat maps %v (the originals keep theirs: %v)", len(stored), stored[0].Result.HeatMaps != nil, entries[0].Result.HeatMaps != nil)
	}
	js, err := json.Marshal(stored)
	if err != nil {
		t.Fatal(err)
	}
	var back []historyEntry
	if err := json.Unmarshal(js, &back); err != nil {
		t.Fatal(err)
	}
	back = fromStorage(back)
	if !reflect.DeepEqual(back, stored) {
		t.Errorf("stored history did not round-trip:\n%+v\n%+v", back[0], stored[0])
	}
	bad := entry("a red circle", "a blue circle", 1, hash)
	bad.Result.Images[1].URL = "javascript:alert(1)"
	noSeed := entry("a", "b", 1, hash)
	noSeed.Spec.Seed = nil
	if got := fromStorage([]historyEntry{bad, noSeed, entries[0]}); len(got) != 1 || *got[0].Spec.Seed != 0 {
		t.Errorf("kept %d entries, want only the valid one", len(got))
	}
}

// TestHistoryRestoresEverySetting: opening an entry restores what it ran
// with, and the thumbnail says its prompt and seed.
func TestHistoryRestoresEverySetting(t *testing.T) {
	e := entry("a red circle", "a blue circle", 42, strings.Repeat("cd", 32))
	s := e.restoreSpec()
	if *s.Steps != 12 || *s.Guidance != 9 || s.Cross.End != 0.7 || s.Self.End != 0.3 || s.Negative != "blurry" || *s.Seed != 42 ||
		s.Model != "" || !reflect.DeepEqual(s.Blend, e.Spec.Blend) {
		t.Errorf("restored %+v", s)
	}
	*s.Steps = 1
	if *e.Spec.Steps != 12 {
		t.Error("restoring shares the entry's settings")
	}
	if prompt, seed := e.caption(); prompt != "a blue circle" || seed != "seed 42" {
		t.Errorf("caption %q %q", prompt, seed)
	}
}

// TestV2HistoryRestoresAsItRan: a v2 history (echoes from before the norm
// default, which left an unused norm window out) reads with an explicit 0
// where an entry states none, so that opening it runs without the window
// as it ran; an entry that states one keeps it, and the stored entries are
// not changed.
func TestV2HistoryRestoresAsItRan(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	plain := entry("a red circle", "a blue circle", 1, hash)
	plain.Spec.Norm = nil
	set := entry("a red circle", "a green circle", 2, hash)
	set.Spec.Norm = ptr(edit.Fraction(0.4))
	v2 := []historyEntry{plain, set}
	got := fromV2(v2)
	if len(got) != 2 || got[0].restoreSpec().Norm == nil || *got[0].restoreSpec().Norm != (edit.Window{}) {
		t.Errorf("a v2 entry without norm restores norm %v, want an explicit 0", got[0].restoreSpec().Norm)
	}
	if n := got[1].restoreSpec().Norm; n == nil || *n != edit.Fraction(0.4) {
		t.Errorf("a v2 entry with norm 0.4 restores %v", n)
	}
	if v2[0].Spec.Norm != nil {
		t.Error("reading a v2 history changed the stored entries")
	}
	for _, h := range earlierHistories {
		if h.key == historyKey {
			t.Errorf("the history's key %q is an earlier build's", h.key)
		}
	}
}

// TestSwitchDefaultsRestoreAsTheyRan: a v4 history (before the tiny
// model's blend_changed and decode_norm defaults) and a v5 history (before
// its blend_reweighted default) read with each tiny-model entry that leaves
// the switch out stating it off, in the spec it restores and in the one
// shown as run; one that states it keeps it, an entry for another model is
// as stored, and the stored entries are not changed. Every earlier history
// goes through the step of each history after it.
func TestSwitchDefaultsRestoreAsTheyRan(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	tiny := func(e historyEntry) historyEntry {
		e.Spec.Model, e.Result.Spec.Model = edit.TinyModelID, edit.TinyModelID
		return e
	}
	for _, c := range []struct {
		version string
		field   string
		convert func([]historyEntry) []historyEntry
		of      func(*edit.Spec) **bool
		later   int // the earlier histories that go through this step: earlierHistories[later:]
	}{
		{"v4", "blend_changed", fromV4, func(s *edit.Spec) **bool { return &s.BlendChanged }, 1},
		{"v5", "blend_reweighted", fromV5, func(s *edit.Spec) **bool { return &s.BlendReweighted }, 0},
	} {
		on := true
		plain := tiny(entry("a red circle", "a blue circle", 1, hash))
		set := tiny(entry("a red circle", "a green circle", 2, hash))
		*c.of(&set.Spec), *c.of(&set.Result.Spec) = &on, &on
		other := entry("a red circle", "a green circle", 3, hash)
		stored := []historyEntry{plain, set, other}
		got := c.convert(stored)
		get := func(e historyEntry) (restored, ran *bool) {
			r := e.restoreSpec()
			return *c.of(&r), *c.of(&e.Result.Spec)
		}
		if b, ran := get(got[0]); b == nil || *b || ran == nil || *ran {
			t.Errorf("a %s entry without %s restores %v and shows %v as run; want both off", c.version, c.field, b, ran)
		}
		if b, _ := get(got[1]); b == nil || !*b {
			t.Errorf("a %s entry with %s on restores %v", c.version, c.field, b)
		}
		if b, ran := get(got[2]); b != nil || ran != nil {
			t.Errorf("an entry for another model (%q) gets %s %v", other.Spec.Model, c.field, b)
		}
		if b, ran := get(stored[0]); b != nil || ran != nil {
			t.Errorf("reading a %s history changed the stored entries", c.version)
		}
		for _, h := range earlierHistories[c.later:] {
			if b, _ := get(h.convert([]historyEntry{plain})[0]); b == nil || *b {
				t.Errorf("a %s entry restores %s %v; want it off", h.key, c.field, b)
			}
		}
	}
	// The v4 step also states the decoding each image had.
	if d := fromV4([]historyEntry{tiny(entry("a red circle", "a blue circle", 1, hash))})[0].restoreSpec().DecodeNorm; d != edit.DecodeNormOwn {
		t.Errorf("a v4 entry without decode_norm restores %q; want own", d)
	}
}

// TestV3HistoryRestoresAsItRan: a v3 history (before the tiny model's
// cross defaults) reads with each tiny-model entry's swapped words at its
// cross, in the spec it restores and in the one shown as run, so that
// both run as it ran; one that states its own cross_changed keeps it, an
// entry for another model is as stored, and the stored entries are not
// changed. A v2 history goes through both steps.
func TestV3HistoryRestoresAsItRan(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	tiny := func(e historyEntry) historyEntry {
		e.Spec.Model, e.Result.Spec.Model = edit.TinyModelID, edit.TinyModelID
		return e
	}
	plain := tiny(entry("a red circle", "a blue circle", 1, hash))
	set := tiny(entry("a red circle", "a green circle", 2, hash))
	set.Spec.CrossChanged = ptr(edit.Fraction(0.3))
	other := entry("a red circle", "a green circle", 3, hash) // another model's: its defaults did not change
	v3 := []historyEntry{plain, set, other}
	got := fromV3(v3)
	if got[2].Spec.CrossChanged != nil || got[2].Result.Spec.CrossChanged != nil {
		t.Errorf("an entry for another model (%q) gets cross_changed %v", other.Spec.Model, got[2].Spec.CrossChanged)
	}
	if c := got[0].restoreSpec().CrossChanged; c == nil || *c != *plain.Spec.Cross {
		t.Errorf("a v3 entry without cross_changed restores %v; want its cross %v", c, *plain.Spec.Cross)
	}
	if c := got[1].restoreSpec().CrossChanged; c == nil || *c != edit.Fraction(0.3) {
		t.Errorf("a v3 entry with cross_changed 0.3 restores %v", c)
	}
	if c := got[0].Result.Spec.CrossChanged; c == nil || *c != *plain.Spec.Cross {
		t.Errorf("a v3 entry's result shows cross_changed %v as run; want its cross %v", c, *plain.Spec.Cross)
	}
	if v3[0].Spec.CrossChanged != nil || v3[0].Result.Spec.CrossChanged != nil {
		t.Error("reading a v3 history changed the stored entries")
	}
	plain.Spec.Norm = nil
	var v2 func([]historyEntry) []historyEntry
	for _, h := range earlierHistories {
		if h.key == "reword.history.v2" {
			v2 = h.convert
		}
	}
	if v2 == nil {
		t.Fatal("a v2 history is no longer read")
	}
	s := v2([]historyEntry{plain})[0].restoreSpec()
	if s.Norm == nil || *s.Norm != (edit.Window{}) || s.CrossChanged == nil || *s.CrossChanged != *plain.Spec.Cross {
		t.Errorf("a v2 entry restores norm %v and cross_changed %v; want 0 and its cross", s.Norm, s.CrossChanged)
	}
}
