// Package align turns the prompts of an edit into Prompt-to-Prompt's
// attention controls.
package align
