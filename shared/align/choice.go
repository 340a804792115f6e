package align

import "fmt"

// Choice is the edit kind asked for one target. Auto leaves it to the
// prompts (Compare's rule: the same number of words with some swapped is a
// Replace, anything else a Refine); ForceReplace and ForceRefine override
// that rule, because it guesses wrong where a phrase changes but the word
// count happens to stay ("a big cat" → "a cat sleeping" is no swap), and
// because benchmarks such as PIE-Bench run every pair as a refinement.
//
// The values are the names the edit spec, share links and the CLI use.
type Choice string

const (
	// Auto: the kind the prompts give (the zero value "" means Auto too).
	Auto Choice = "auto"
	// ForceReplace: a word swap (AttentionReplace); the target needs as
	// many words as the source.
	ForceReplace Choice = "replace"
	// ForceRefine: a global token alignment (AttentionRefine), whatever
	// the word counts.
	ForceRefine Choice = "refine"
)

// Choices lists the accepted choices, the default first.
var Choices = []Choice{Auto, ForceReplace, ForceRefine}

// ChoiceError says why a target cannot be edited with the kind chosen.
type ChoiceError struct {
	Choice Choice
	// SourceWords and TargetWords are the prompts' white-space separated
	// words (Words).
	SourceWords, TargetWords int
	// Word is the index of a word that differs but has no tokens on one
	// side, or -1 when the word counts differ.
	Word int
}

func (e *ChoiceError) Error() string { return "align: " + e.Reason("the target") }

// Reason says what is wrong in words, naming the target as target
// ("edit 2"), so that a caller can put it in its own sentence.
func (e *ChoiceError) Reason(target string) string {
	switch {
	case e.Choice != ForceReplace:
		return fmt.Sprintf("the kind %q is unknown: choose %s, %s or %s", string(e.Choice), Auto, ForceReplace, ForceRefine)
	case e.Word < 0:
		return fmt.Sprintf("replace swaps words one for one, so it needs as many words in %s as in the source: the source has %d, %s has %d; choose refine or auto", target, e.SourceWords, target, e.TargetWords)
	}
	return fmt.Sprintf("replace needs every changed word to have tokens in both prompts: word %d is empty in one of them once cleaned; choose refine or auto", e.Word+1)
}
