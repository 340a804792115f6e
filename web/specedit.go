package web

import (
	"crypto/rand"
	"encoding/binary"
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
func cloneSpec(s edit.Spec) edit.Spec { return s.Clone() }

// blendRole is a word's part in one target's local blend.
type blendRole string

const (
	blendNone    blendRole = ""        // not part of the target's blend
	blendWords   blendRole = "words"   // the target changes where the word is
	blendExclude blendRole = "exclude" // the target never changes where it is
)

// WordSettings are the per-word controls of the word panel.
type WordSettings struct {
	// Reweight scales the word's attention; 1 leaves it as is.
	Reweight float64
	// Cross is the word's own cross-replace window; nil uses the global one.
	Cross *edit.Window
	// Blend is the word's role in each target's local blend, by target.
	Blend []blendRole
}

// wordSettings reads the settings of the word named key from s.
func wordSettings(s edit.Spec, key string) WordSettings {
	ws := WordSettings{Reweight: 1, Blend: make([]blendRole, len(s.Targets))}
	if v, ok := s.Reweights[key]; ok {
		ws.Reweight = v
	}
	if w, ok := s.CrossWords[key]; ok {
		ws.Cross = &w
	}
	for i := range ws.Blend {
		b := s.BlendOf(i)
		switch {
		case slices.Contains(b.Words, key):
			ws.Blend[i] = blendWords
		case slices.Contains(b.Exclude, key):
			ws.Blend[i] = blendExclude
		}
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
	for i, role := range ws.Blend {
		if i >= len(s.Targets) {
			break
		}
		b := s.BlendOf(i).Clone()
		b.Words = slices.DeleteFunc(b.Words, func(w string) bool { return w == key })
		b.Exclude = slices.DeleteFunc(b.Exclude, func(w string) bool { return w == key })
		switch role {
		case blendWords:
			b.Words = append(b.Words, key)
		case blendExclude:
			b.Exclude = append(b.Exclude, key)
		}
		s.SetBlend(i, b)
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

// blendTargets lists the targets whose local blend can use the word named
// key: those where it occurs in the source or in the target.
func blendTargets(tok *clip.Tokenizer, s edit.Spec, key string) []int {
	in := s.Words(tok)
	var out []int
	for i := range s.Targets {
		if found, _ := in.InBlendOf(i, key); found {
			out = append(out, i)
		}
	}
	return out
}

// specFieldKey turns the path of a spec field in a server error
// ("data.spec.steps", "spec.targets[1]", `spec.reweights["cat"]`) into the
// key the editor files errors under: the path inside the spec. ok is false
// for any other path, such as the envelope's id, type, data or v, which
// no control of the form holds.
func specFieldKey(path string) (key string, ok bool) {
	key, ok = strings.CutPrefix(strings.TrimPrefix(path, "data."), "spec.")
	if !ok || key == "" {
		return "", false
	}
	return key, true
}
