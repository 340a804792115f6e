package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"

	"reword/backend/graph"
	"reword/backend/ort"
)

// profile runs both models under ONNX Runtime's profiler and reports the
// kernel time of the inserted nodes by op type and by part of the edit.
func (b *instrumentBench) profile(ctx context.Context, w io.Writer, controls string, orig, inst map[string]ort.Value) error {
	prefix := filepath.Join(b.tmp, "profile_"+controls+"_")
	so, si, err := b.sessions(prefix)
	if err != nil {
		return err
	}
	for i := 0; i < b.profileRuns && err == nil; i++ {
		if _, _, err = runUNetOnce(ctx, so, orig); err == nil {
			_, _, err = runUNetOnce(ctx, si, inst)
		}
	}
	so.Close()
	si.Close()
	if err != nil {
		return err
	}
	return b.reportProfiles(w, fmt.Sprintf("%d runs each", b.profileRuns), prefix+"orig", prefix+"inst", 0)
}

// reportProfiles reads the original's and the instrumented model's
// profiles (files starting with the prefixes), leaving out their first skip
// runs, and prints the kernel times.
func (b *instrumentBench) reportProfiles(w io.Writer, how, origPrefix, instPrefix string, skip int) error {
	po, err := readORTProfile(origPrefix, b.desc, skip)
	if err != nil {
		return err
	}
	pi, err := readORTProfile(instPrefix, b.desc, skip)
	if err != nil {
		return err
	}
	per := func(us int64, p *ortProfile) float64 { return float64(us) / 1000 / float64(p.runs) }
	fmt.Fprintf(w, "    ONNX Runtime profiler, %s (kernel time, ms/run): original %.2f, instrumented %.2f (ratio %.3f), of which inserted nodes %.2f (%d nodes, %.4f of the original's)\n",
		how, per(po.total, po), per(pi.total, pi), per(pi.total, pi)/per(po.total, po), per(pi.inserted, pi), pi.insertedNodes,
		per(pi.inserted, pi)/per(po.total, po))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "      inserted op\tms/run\tnodes\t")
	for _, op := range sortedProfileKeys(pi.byOp) {
		fmt.Fprintf(tw, "      %s\t%.3f\t%d\t\n", op, per(pi.byOp[op], pi), pi.nodesByOp[op])
	}
	tw.Flush()
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "      part of the edit\tms/run\t")
	for _, part := range sortedProfileKeys(pi.byPart) {
		fmt.Fprintf(tw, "      %s\t%.3f\t\n", part, per(pi.byPart[part], pi))
	}
	tw.Flush()
	return nil
}

// ortProfile sums an ONNX Runtime profile.
type ortProfile struct {
	runs          int
	total         int64 // µs of the graph's nodes
	inserted      int64 // µs of nodes the instrumentation added
	insertedNodes int
	byOp          map[string]int64
	nodesByOp     map[string]int
	byPart        map[string]int64
}

// profileEvent is one event of an ONNX Runtime profile.
type profileEvent struct {
	Cat  string `json:"cat"`
	Name string `json:"name"`
	Dur  int64  `json:"dur"`
	Args struct {
		Op string `json:"op_name"`
	} `json:"args"`
}

// readORTProfile sums the one profile whose file name starts with prefix.
//
// A node inside an inserted If's branches is timed on its own and again
// within its If, so the totals count the If alone. Its own time then moves
// from the If to its op type, and for the copies of the original
// Softmax, P·V MatMul and InstanceNormalization that the branches compute
// in place of the original graph's (graph.MovedMarker) out of the inserted
// time, which
// leaves "If" with the If nodes' own overhead.
func readORTProfile(prefix string, desc *graph.Description, skip int) (*ortProfile, error) {
	files, err := filepath.Glob(prefix + "*.json")
	if err != nil || len(files) != 1 {
		return nil, fmt.Errorf("expected one ONNX Runtime profile %s*.json, found %d (%v)", prefix, len(files), err)
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		return nil, err
	}
	var events []profileEvent
	if err := json.Unmarshal(raw, &events); err != nil {
		return nil, fmt.Errorf("reading profile %s: %w", files[0], err)
	}
	p := &ortProfile{byOp: map[string]int64{}, nodesByOp: map[string]int{}, byPart: map[string]int64{}}
	p.add(skipRuns(events, skip), desc)
	if p.runs == 0 {
		return nil, fmt.Errorf("profile %s has no model runs", files[0])
	}
	return p, nil
}

// skipRuns drops the first n runs' events: a process's warm-up runs, whose
// kernels also take the page faults of memory the process touches first.
// ONNX Runtime writes a run's node events before its model_run event, so
// everything up to the n-th model_run goes.
func skipRuns(events []profileEvent, n int) []profileEvent {
	for i, e := range events {
		if n == 0 {
			return events[i:]
		}
		if e.Cat == "Session" && e.Name == "model_run" {
			n--
		}
	}
	return nil
}

func (p *ortProfile) add(events []profileEvent, desc *graph.Description) {
	kinds := map[string]graph.Kind{}
	for _, l := range desc.Layers {
		kinds[l.Name] = l.Kind
	}
	seen := map[string]bool{}
	for _, e := range events {
		if e.Cat == "Session" && e.Name == "model_run" {
			p.runs++
		}
		if e.Cat != "Node" || !strings.HasSuffix(e.Name, "_kernel_time") {
			continue
		}
		node := strings.TrimSuffix(e.Name, "_kernel_time")
		nested := strings.Contains(node, graph.ThenMarker) || strings.Contains(node, graph.ElseMarker)
		if !nested {
			p.total += e.Dur
		}
		i := strings.Index(node, graph.NodeMarker)
		if i < 0 {
			continue
		}
		part := "cross-attention layers (edit and head means)"
		switch layer := node[:i]; {
		case layer == "":
			part = "prelude and maps output"
		case kinds[layer] == graph.Self:
			part = "self-replace layers"
		case strings.Contains(layer, graph.NormScope):
			part = "GroupNorms (norm control)"
		}
		switch {
		case !nested:
			p.inserted += e.Dur
			p.byOp[e.Args.Op] += e.Dur
			p.byPart[part] += e.Dur
		case strings.Contains(node, graph.MovedMarker):
			p.inserted -= e.Dur
			p.byOp["If"] -= e.Dur
			p.byPart[part] -= e.Dur
			continue
		default:
			p.byOp["If"] -= e.Dur
			p.byOp[e.Args.Op] += e.Dur
		}
		if !seen[node] {
			seen[node] = true
			p.insertedNodes++
			p.nodesByOp[e.Args.Op]++
		}
	}
}

func sortedProfileKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
