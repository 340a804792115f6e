package main

import (
	"context"
	"io"
)

// Subcommands owned by issues that have not landed yet. Each moves to its own
// file when its issue lands.
func init() {
	for _, p := range []struct{ name, summary, issue string }{
		{"tokenize", "print the CLIP tokens of a prompt", "3 (shared/clip)"},
		{"link", "encode or decode a shareable edit link", "3 (shared/edit)"},
		{"instrument", "rewrite a model's UNet for attention control", "4 (backend/graph)"},
		{"generate", "generate an image from a prompt", "5 (backend/diffusion)"},
		{"edit", "edit a generated image by rewording its prompt", "5 (backend/diffusion)"},
		{"invert", "invert a photo and edit it", "6 (real photo editing)"},
		{"bench", "run the benchmarks (instrument, engine, edit, invert, model)", "4 and 5"},
	} {
		p := p
		register(command{name: p.name, summary: p.summary, run: func(context.Context, []string, io.Writer, io.Writer) error {
			return errPending(p.issue)
		}})
	}
}
