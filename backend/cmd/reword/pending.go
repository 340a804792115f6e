package main

import (
	"context"
	"io"
)

// Subcommands owned by issues that have not landed yet. Each moves to its own
// file when its issue lands.
func init() {
	for _, p := range []struct{ name, summary, issue string }{
		{"invert", "invert a photo and edit it", "6 (real photo editing)"},
	} {
		p := p
		register(command{name: p.name, summary: p.summary, run: func(context.Context, []string, io.Writer, io.Writer) error {
			return errPending(p.issue)
		}})
	}
}

func init() {
	for _, p := range []struct{ name, summary, issue string }{
		{"invert", "reconstruction and edit metrics per inversion method", "6 (real photo editing)"},
	} {
		p := p
		registerBench(benchmark{name: p.name, summary: p.summary, run: func(context.Context, []string, io.Writer, io.Writer) error {
			return errPending(p.issue)
		}})
	}
}
