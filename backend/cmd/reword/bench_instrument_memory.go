package main

import (
	"context"
	"fmt"
	"io"
)

// child returns the measurement of the original model (instrumented false)
// or of the instrumented one under the given controls, in a process of its
// own.
func (b *instrumentBench) child(ctx context.Context, instrumented bool, controls string, warmup, runs int, noArena bool) (*childReport, error) {
	c := benchChild{Model: b.origPath, Desc: b.instPath, Controls: controls, Targets: b.targets, Threads: b.threads,
		Warmup: warmup, Runs: runs, NoArena: noArena}
	if instrumented {
		c.Model = b.instPath
	}
	return c.spawn(ctx)
}

// memory measures each model's peak resident set size in a process of its
// own (b.memoryRuns runs each, no warm-up: the first run allocates), with
// ONNX Runtime's CPU memory arena, as the engine runs, unless arena is
// false, and without it, where the peak follows what the tensors need
// rather than the arena's growth in large steps.
func (b *instrumentBench) memory(ctx context.Context, w io.Writer, arena bool) error {
	noArena := []bool{true}
	if arena {
		noArena = []bool{false, true}
	}
	for _, na := range noArena {
		orig, err := b.child(ctx, false, neutralControls, 0, b.memoryRuns, na)
		if err != nil {
			return err
		}
		inst := map[string]*childReport{}
		for _, kind := range b.controls {
			if inst[kind], err = b.child(ctx, true, kind, 0, b.memoryRuns, na); err != nil {
				return err
			}
		}
		b.reportMemory(w, fmt.Sprintf("%d run(s)", b.memoryRuns), !na, orig, inst)
	}
	return nil
}

// timeSeparately times and measures each model in a process of its own:
// the original, then the instrumented one under each kind of controls, one
// warm-up and b.reps runs each. Nothing is interleaved, so the ratios are of
// medians, and the CPU time (one thread) is the reading to trust on a
// shared machine.
func (b *instrumentBench) timeSeparately(ctx context.Context, w io.Writer) error {
	orig, err := b.child(ctx, false, neutralControls, 1, b.reps, false)
	if err != nil {
		return err
	}
	inst := map[string]*childReport{}
	for _, kind := range b.controls {
		if inst[kind], err = b.child(ctx, true, kind, 1, b.reps, false); err != nil {
			return err
		}
		b.report(w, kind, fmt.Sprintf("one process per model, %d runs after a warm-up", b.reps),
			runTimes{orig.Wall, orig.CPU}, runTimes{inst[kind].Wall, inst[kind].CPU}, false)
	}
	b.reportMemory(w, fmt.Sprintf("%d run(s) after a warm-up", b.reps), true, orig, inst)
	if b.memoryRuns > 0 {
		return b.memory(ctx, w, false)
	}
	return nil
}

// reportMemory prints the peak resident set sizes: the process's while
// running, with its ratio instrumented/original, and the same counted from
// the process before it loaded the model (ONNX Runtime's library and Go's
// runtime, which weigh on a small model's ratio).
func (b *instrumentBench) reportMemory(w io.Writer, how string, arena bool, orig *childReport, inst map[string]*childReport) {
	mb := func(kb int64) float64 { return float64(kb) / 1024 }
	allocator := "with ONNX Runtime's CPU memory arena, as the engine runs"
	if !arena {
		allocator = "without the CPU memory arena: what the tensors need"
	}
	fmt.Fprintf(w, "  peak memory, %s; one process per model, %s (resident set: VmHWM, reset after loading):\n", allocator, how)
	fmt.Fprintf(w, "    original                         running %9.1f MB (loading %.1f MB, before loading %.1f MB)\n",
		mb(orig.RunPeakKB), mb(orig.LoadPeakKB), mb(orig.BaseKB))
	for _, kind := range b.controls {
		r := inst[kind]
		fmt.Fprintf(w, "    instrumented, %-7s controls   running %9.1f MB (loading %.1f MB, before loading %.1f MB)\n",
			kind, mb(r.RunPeakKB), mb(r.LoadPeakKB), mb(r.BaseKB))
		fmt.Fprintf(w, "      ratio instrumented/original while running: %.3f (%.3f of the peaks above the process before loading)\n",
			float64(r.RunPeakKB)/float64(orig.RunPeakKB), float64(r.RunPeakKB-r.BaseKB)/float64(orig.RunPeakKB-orig.BaseKB))
	}
}
