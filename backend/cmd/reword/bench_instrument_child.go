package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"reword/backend/graph"
	"reword/backend/graph/modelfile"
	"reword/backend/ort"
)

// benchChild is what one measuring child process of `reword bench
// instrument` does: load one model, run it, and report its peak memory and
// run times. A process of its own per model is what makes the peak
// resident set size the model's: ONNX Runtime's arena keeps what a session
// allocated until the process ends, so two models in one process would
// share one high-water mark.
type benchChild struct {
	Model    string `json:"model"` // the model file to run
	Desc     string `json:"desc"`  // the instrumented file, whose description sizes the inputs
	Controls string `json:"controls"`
	Maps     string `json:"maps"` // the attention-map outputs asked for (mapsNone, …)
	Targets  int    `json:"targets"`
	Threads  int    `json:"threads"`
	Warmup   int    `json:"warmup"`
	Runs     int    `json:"runs"`
	// NoArena runs without ONNX Runtime's CPU memory arena
	// (ort.Options.DisableCPUArena).
	NoArena bool `json:"no_arena"`
	// NoMemPattern runs without ONNX Runtime's memory pattern
	// (ort.Options.DisableMemPattern).
	NoMemPattern bool `json:"no_mem_pattern"`
	// Profile, when set, profiles every run into a file starting with it
	// (ort.Options.ProfilePrefix).
	Profile string `json:"profile,omitempty"`
}

// childReport is a child's answer, printed as JSON on its standard output.
type childReport struct {
	// BaseKB is the process's resident set before the model was loaded
	// (ONNX Runtime's library already loaded); LoadPeakKB its high-water
	// mark once the session was created; RunPeakKB the high-water mark
	// of the runs alone (reset to the resident set after loading).
	BaseKB, LoadPeakKB, RunPeakKB int64
	Wall, CPU                     []time.Duration
}

// runAsMainEnv makes a `go test` binary act as bin/reword (TestMain in
// serve_roles_test.go), so the children also start under tests; bin/reword
// ignores it.
const runAsMainEnv = "REWORD_TEST_RUN_AS_MAIN=1"

// spawn runs c in a child process of this executable.
func (c benchChild) spawn(ctx context.Context) (*childReport, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	spec, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, "bench", "instrument", "-child", string(spec))
	cmd.Env = append(os.Environ(), runAsMainEnv)
	if c.NoArena {
		// glibc then maps every allocation of 64 KiB or more on its own
		// and unmaps it when freed, so the resident set follows the live
		// tensors instead of keeping freed blocks in malloc's heap.
		cmd.Env = append(cmd.Env, "MALLOC_MMAP_THRESHOLD_=65536")
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("measuring %s in a child process: %w: %s", c.Model, err, strings.TrimSpace(stderr.String()))
	}
	var r childReport
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return nil, fmt.Errorf("measuring %s in a child process: reading its report %q: %w", c.Model, stdout.String(), err)
	}
	return &r, nil
}

// run is the child's side: it prints a childReport.
func (c benchChild) run(ctx context.Context, w *os.File) error {
	desc, err := graph.ReadDescription(c.Desc)
	if err != nil {
		return err
	}
	m, err := modelfile.Read(c.Model)
	if err != nil {
		return err
	}
	inputs, err := graphInputs(m.Proto.GetGraph())
	if err != nil {
		return err
	}
	if err := ort.Init(); err != nil {
		return err
	}
	feeds, err := newBenchFeeds(desc, c.Targets, c.Maps).forSession(inputs, c.Controls)
	if err != nil {
		return err
	}
	defer destroyValues(feeds)
	// Go's garbage from reading the graph would otherwise sit in the
	// resident set, a few MB that differ from process to process.
	m = nil
	debug.FreeOSMemory()
	var r childReport
	if r.BaseKB, err = procStatusKB("VmRSS"); err != nil {
		return err
	}
	s, err := ort.NewSession(c.Model, ort.Options{Threads: c.Threads, DisableCPUArena: c.NoArena, DisableMemPattern: c.NoMemPattern,
		ProfilePrefix: c.Profile})
	if err != nil {
		return err
	}
	defer s.Close()
	if r.LoadPeakKB, err = procStatusKB("VmHWM"); err != nil {
		return err
	}
	// Writing 5 to clear_refs resets the high-water mark to the current
	// resident set (Linux ≥ 4.0), so what follows measures the runs.
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		return fmt.Errorf("resetting the peak resident set size: %w", err)
	}
	for i := 0; i < c.Warmup+c.Runs; i++ {
		wall, cpu, err := runUNetOnce(ctx, s, feeds)
		if err != nil {
			return err
		}
		if i >= c.Warmup {
			r.Wall, r.CPU = append(r.Wall, wall), append(r.CPU, cpu)
		}
	}
	if r.RunPeakKB, err = procStatusKB("VmHWM"); err != nil {
		return err
	}
	return json.NewEncoder(w).Encode(r)
}

// procStatusKB reads one kB field of /proc/self/status (VmRSS: the resident
// set now; VmHWM: its peak).
func procStatusKB(field string) (int64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("peak memory is read from /proc/self/status (Linux): %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/self/status %s: %w", field, err)
		}
		return kb, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("/proc/self/status has no %s", field)
}

// runUNetOnce runs s once and returns the wall-clock time and the CPU time
// of the calling thread. With one intra-op thread ONNX Runtime computes on
// the calling thread, so its CPU time is the run's compute without the time
// other processes took the core away: the steadier reading on a shared
// machine. With more threads it misses the pool's work (see cpuValid).
func runUNetOnce(ctx context.Context, s *ort.Session, feeds map[string]ort.Value) (wall, cpu time.Duration, err error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	cpu0 := threadCPUTime()
	start := time.Now()
	outs, err := s.RunContext(ctx, feeds)
	wall, cpu = time.Since(start), threadCPUTime()-cpu0
	if err != nil {
		return 0, 0, err
	}
	outs.Destroy()
	return wall, cpu, nil
}
