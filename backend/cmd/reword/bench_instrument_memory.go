package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// child returns the measurement of the original model (instrumented false)
// or of the instrumented one under the given controls, in a process of its
// own.
func (b *instrumentBench) child(ctx context.Context, instrumented bool, controls string, warmup, runs int, noArena bool, profile string) (*childReport, error) {
	c := benchChild{Model: b.origPath, Desc: b.instPath, Controls: controls, Maps: b.maps, Targets: b.targets, Threads: b.threads,
		Warmup: warmup, Runs: runs, NoArena: noArena, NoMemPattern: !b.memPattern, Profile: profile}
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
		orig, err := b.child(ctx, false, neutralControls, 0, b.memoryRuns, na, "")
		if err != nil {
			return err
		}
		inst := map[string]*childReport{}
		for _, kind := range b.controls {
			if inst[kind], err = b.child(ctx, true, kind, 0, b.memoryRuns, na, ""); err != nil {
				return err
			}
		}
		b.reportMemory(w, fmt.Sprintf("one process per model, %d run(s)", b.memoryRuns), !na, orig, inst)
	}
	return nil
}

// separateWarmup is the warm-up runs of a process of its own: with its
// memory pattern ONNX Runtime plans a run's memory from the first and
// allocates that plan in the second, whose page faults can take longer than
// the run; without it the first run allocates what the others reuse.
func (b *instrumentBench) separateWarmup() int {
	if b.memPattern {
		return 2
	}
	return 1
}

// timeSeparately times and measures each model in processes of their own:
// b.processes rounds of the original, then the instrumented one under each
// kind of controls, b.separateWarmup() warm-up runs and b.reps timed runs each.
// Nothing is interleaved, so the ratios are of the medians of the pooled
// runs, and the CPU time (one thread) is the reading to trust on a shared
// machine. More than one process per model shows how much a model's speed
// varies from process to process (where its large tensors land in memory).
func (b *instrumentBench) timeSeparately(ctx context.Context, w io.Writer) error {
	variants := append([]string{""}, b.controls...) // "": the original
	reports := map[string][]*childReport{}
	profiles := map[string]string{}
	for p := 0; p < b.processes; p++ {
		for _, v := range variants {
			kind := v
			if v == "" {
				kind = neutralControls
			}
			profile := ""
			if p == 0 && b.profileRuns > 0 {
				profile = filepath.Join(b.tmp, "profile_"+v+"_")
				profiles[v] = profile
			}
			r, err := b.child(ctx, v != "", kind, b.separateWarmup(), b.reps, !b.arena, profile)
			if err != nil {
				return err
			}
			reports[v] = append(reports[v], r)
		}
	}
	pool := func(rs []*childReport) (t runTimes) {
		for _, r := range rs {
			t.wall, t.cpu = append(t.wall, r.Wall...), append(t.cpu, r.CPU...)
		}
		return t
	}
	how := fmt.Sprintf("%d process(es) per model, %d runs each after %d warm-up runs", b.processes, b.reps, b.separateWarmup())
	for _, kind := range b.controls {
		b.report(w, kind, how, pool(reports[""]), pool(reports[kind]), false)
		if b.processes > 1 && b.cpuValid() {
			fmt.Fprintf(w, "    CPU time    medians per process: original %s ms, instrumented %s ms\n",
				processMedians(reports[""]), processMedians(reports[kind]))
		}
		if b.profileRuns > 0 {
			how := fmt.Sprintf("the %d timed runs of each model's first process", b.reps)
			if err := b.reportProfiles(w, how, profiles[""], profiles[kind], b.separateWarmup()); err != nil {
				return err
			}
		}
	}
	peak := func(rs []*childReport) *childReport {
		max := rs[0]
		for _, r := range rs[1:] {
			if r.RunPeakKB > max.RunPeakKB {
				max = r
			}
		}
		return max
	}
	inst := map[string]*childReport{}
	for _, kind := range b.controls {
		inst[kind] = peak(reports[kind])
	}
	b.reportMemory(w, how+", the largest peak of a model's processes", b.arena, peak(reports[""]), inst)
	if b.memoryRuns > 0 && b.arena {
		return b.memory(ctx, w, false)
	}
	return nil
}

func processMedians(rs []*childReport) string {
	var out []string
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%.0f", quartiles(durationsMs(r.CPU))[1]))
	}
	return strings.Join(out, ", ")
}

// reportMemory prints the peak resident set sizes: the process's while
// running, with its ratio instrumented/original, and the same counted from
// the process before it loaded the model (ONNX Runtime's library and Go's
// runtime, which weigh on a small model's ratio).
func (b *instrumentBench) reportMemory(w io.Writer, how string, arena bool, orig *childReport, inst map[string]*childReport) {
	mb := func(kb int64) float64 { return float64(kb) / 1024 }
	allocator := "with ONNX Runtime's CPU memory arena, as the engine runs"
	if !arena {
		allocator = "without the CPU memory arena, allocations of 64 KiB or more unmapped when freed: what the live tensors need"
	}
	fmt.Fprintf(w, "  peak memory, %s; %s (resident set: VmHWM, reset after loading):\n", allocator, how)
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
