package main

import (
	"context"
	"fmt"
	"io"
	"sort"

	"reword/backend/diffusion"
	"reword/models/tiny/scene"
)

// benchmark is one `reword bench NAME` report. Benchmarks print ratios and
// tables measured within one run, never absolute pass/fail timings.
type benchmark struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var benchmarks = map[string]benchmark{}

func registerBench(b benchmark) {
	if _, dup := benchmarks[b.name]; dup {
		panic("reword: benchmark registered twice: " + b.name)
	}
	benchmarks[b.name] = b
}

func init() {
	register(command{
		name:    "bench",
		summary: "run a benchmark and print its report (reword bench --help lists them)",
		run:     runBench,
	})
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(stdout, "Usage: reword bench <name> [flags]\n\nBenchmarks:")
		names := make([]string, 0, len(benchmarks))
		for n := range benchmarks {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(stdout, "  %-10s %s\n", n, benchmarks[n].summary)
		}
		if len(args) == 0 {
			return usageError("name a benchmark")
		}
		return nil
	}
	b, ok := benchmarks[args[0]]
	if !ok {
		return usageError("unknown benchmark %q (run 'reword bench --help' for the list)", args[0])
	}
	return b.run(ctx, args[1:], stdout, stderr)
}

// needSceneImages refuses models whose images the tiny model's evaluator
// cannot read: it knows only the 64×64 scenes of models/tiny/scene.
func needSceneImages(e *diffusion.Engine) error {
	m := e.Manifest()
	if m.Image.Width != scene.ImageSize || m.Image.Height != scene.ImageSize {
		return fmt.Errorf("model %s makes %dx%d images; this benchmark scores them with the tiny model's evaluator, which reads only %dx%d scenes",
			m.Dir, m.Image.Width, m.Image.Height, scene.ImageSize, scene.ImageSize)
	}
	return nil
}
