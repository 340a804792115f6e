package web

import (
	"crypto/rand"
	"encoding/binary"
	"maps"
	"slices"
	"strings"

	"reword/shared/clip"
	"reword/shared/edit"
)

// The example the editor opens with: an edit the tiny model renders well
// (it was trained on coloured shapes), so a first Run shows what a word
// swap does.
const (
	exampleSource = "a red circle"
	exampleTarget = "a blue circle"
)

// newSpec is the spec a fresh editor starts from: the example prompts and a
// random seed; everything else takes the model's defaults.
func newSpec() edit.Spec {
	seed := randomSeed()
	return edit.Spec{Source: exampleSource, Targets: []string{exampleTarget}, Seed: &seed}
}

// randomSeed returns a seed small enough to read and type back (32 bits).
func randomSeed() uint64 {
	var b [4]byte
	rand.Read(b[:]) // never fails (crypto/rand panics instead)
	return uint64(binary.BigEndian.Uint32(b[:]))
}

// cloneSpec returns a deep copy of s, so that editing it never changes a spec
// kept elsewhere (history entries, the last run).
func cloneSpec(s edit.Spec) edit.Spec {
	c := s
	c.Targets = slices.Clone(s.Targets)
	c.Blend = slices.Clone(s.Blend)
	c.Reweights = maps.Clone(s.Reweights)
	c.CrossWords = maps.Clone(s.CrossWords)
	copyPtr := func(p *int) *int {
		if p == nil {
			return nil
		}
		v := *p
		return &v
	}
	c.Steps, c.Width, c.Height = copyPtr(s.Steps), copyPtr(s.Width), copyPtr(s.Height)
	if s.Seed != nil {
		v := *s.Seed
		c.Seed = &v
	}
	if s.Guidance != nil {
		v := *s.Guidance
		c.Guidance = &v
	}
	if s.Cross != nil {
		v := *s.Cross
		c.Cross = &v
	}
	if s.Self != nil {
		v := *s.Self
		c.Self = &v
	}
	return c
}

// WordSettings are the per-word controls of the word panel.
type WordSettings struct {
	// Reweight scales the word's attention; 1 leaves it as is.
	Reweight float64
	// Cross is the word's own cross-replace window; nil uses the global one.
	Cross *edit.Window
	// Blend marks the word as delimiting a local edit.
	Blend bool
}

// wordSettings reads the settings of the word named key from s.
func wordSettings(s edit.Spec, key string) WordSettings {
	ws := WordSettings{Reweight: 1, Blend: slices.Contains(s.Blend, key)}
	if v, ok := s.Reweights[key]; ok {
		ws.Reweight = v
	}
	if w, ok := s.CrossWords[key]; ok {
		ws.Cross = &w
	}
	return ws
}

// setWordSettings stores the settings of the word named key in s, leaving
// out whatever is at its neutral value so that specs and links stay short.
func setWordSettings(s *edit.Spec, key string, ws WordSettings) {
	if ws.Reweight == 1 {
		delete(s.Reweights, key)
	} else {
		if s.Reweights == nil {
			s.Reweights = map[string]float64{}
		}
		s.Reweights[key] = ws.Reweight
	}
	if ws.Cross == nil {
		delete(s.CrossWords, key)
	} else {
		if s.CrossWords == nil {
			s.CrossWords = map[string]edit.Window{}
		}
		s.CrossWords[key] = *ws.Cross
	}
	i := slices.Index(s.Blend, key)
	switch {
	case ws.Blend && i < 0:
		s.Blend = append(s.Blend, key)
	case !ws.Blend && i >= 0:
		s.Blend = slices.Delete(s.Blend, i, i+1)
	}
	dropEmptyWordSettings(s)
}

// dropEmptyWordSettings sets empty word collections to nil: the canonical
// JSON leaves them out either way, but equal specs must compare equal.
func dropEmptyWordSettings(s *edit.Spec) {
	if len(s.Reweights) == 0 {
		s.Reweights = nil
	}
	if len(s.CrossWords) == 0 {
		s.CrossWords = nil
	}
	if len(s.Blend) == 0 {
		s.Blend = nil
	}
}

// runnable returns the spec to send and to put in the link: s without the
// word settings whose word no longer occurs where it applies
// (edit.Spec.WithoutStrayWords, the rule the server validates with). The
// editor keeps those settings while the user retypes a prompt; the server
// would refuse them.
func runnable(tok *clip.Tokenizer, s edit.Spec) edit.Spec {
	return cloneSpec(s).WithoutStrayWords(tok)
}

// wordApplies reports whether reweighting and per-word cross windows can
// apply to the word named key: Prompt-to-Prompt looks them up in the target
// prompts only.
func wordApplies(tok *clip.Tokenizer, s edit.Spec, key string) bool {
	found, _ := s.Words(tok).InTargets(key)
	return found
}

// fieldKey turns the field path of a server error ("data.spec.steps",
// "spec.targets[1]", `reweights["cat"]`) into the key the editor files
// errors under: the path inside the spec.
func fieldKey(path string) string {
	path = strings.TrimPrefix(path, "data.")
	path = strings.TrimPrefix(path, "spec.")
	return path
}
