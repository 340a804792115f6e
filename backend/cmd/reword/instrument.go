package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"reword/backend/graph"
	"reword/backend/graph/modelfile"
	"reword/backend/model"
)

func init() {
	register(command{
		name:    "instrument",
		summary: "rewrite a model's UNet for attention control (writes unet/model.p2p.onnx)",
		run:     runInstrument,
	})
}

// defaultLatent is assumed for UNets whose sample size is dynamic and whose
// folder gives no manifest (manifestLatent): SD 1.x at
// 512 px. It only changes the resolutions printed and the meaning of
// absolute query counts given by flags; the default edits are relative to
// the latent size.
var defaultLatent = graph.Size{Height: 64, Width: 64}

func runInstrument(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("instrument", "MODEL_DIR", stderr)
	latentFlag := fs.String("latent", "", "reference latent size HxW for models whose sample size is dynamic (default 64x64, i.e. 512 px SD 1.x; 96x96 for 768 px SD 2.x)")
	selfMax := fs.Int("self-max-queries", -1, "the default self-replace layers, recorded in the file: those with at most this many query positions (runs may choose others: the spec's self_max_tokens); -1: latent positions/16 (16x16 at 512 px), 0: no self layer can self-replace")
	mapsQueries := fs.Int("maps-queries", 0, "local blending reads the maps output of the cross-attention layers with this many query positions (every resolution gets one); 0: the coarsest layers with at least latent positions/16")
	dryRun := fs.Bool("dry-run", false, "print the attention layers and what would be edited, write nothing")
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: reword instrument [flags] MODEL_DIR

Reads MODEL_DIR/unet/model.onnx (a diffusers-layout ONNX export: Reword's tiny
model or your own SD 1.x / 2.x / XL export), finds every attention Softmax and
writes MODEL_DIR/unet/model.p2p.onnx next to it with Prompt-to-Prompt control
inputs (p2p_cross_w, p2p_cross_c, p2p_self_w, p2p_self_layers) and an attention-map output per
cross-attention resolution (p2p_maps_div<stride>).
External weight files stay where they are; weights are never loaded.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError("give exactly one model folder, got %d arguments", fs.NArg())
	}
	opts := graph.Options{MapsQueries: *mapsQueries}
	switch {
	case *selfMax < -1:
		return usageError("-self-max-queries must be -1 (default), 0 (none) or a positive count, got %d", *selfMax)
	case *selfMax == 0:
		opts.SelfReplaceMaxQueries = -1
	case *selfMax > 0:
		opts.SelfReplaceMaxQueries = *selfMax
	}
	if *mapsQueries < 0 {
		return usageError("-maps-queries must be ≥ 0, got %d", *mapsQueries)
	}
	if *latentFlag != "" {
		size, err := parseSize(*latentFlag)
		if err != nil {
			return usageError("-latent: %v", err)
		}
		opts.Latent = size
	}
	dir := fs.Arg(0)
	src, err := graph.UNetPath(dir)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m, err := modelfile.Read(src)
	if err != nil {
		return err
	}
	if _, fixed := graph.FixedLatent(m.Proto); !fixed && opts.Latent == (graph.Size{}) {
		opts.Latent = manifestLatent(dir)
		fmt.Fprintf(stdout, "The UNet accepts any latent size; resolutions below are for %s (pass -latent to change).\n\n", opts.Latent)
	}
	if *dryRun {
		desc, err := graph.Analyze(m.Proto, opts)
		if err != nil {
			return fmt.Errorf("%s: %w", src, err)
		}
		return desc.WriteTable(stdout)
	}
	desc, err := graph.Instrument(m.Proto, opts)
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	dst := strings.TrimSuffix(src, graph.OriginalFile) + graph.InstrumentedFile
	if err := m.Write(dst); err != nil {
		return fmt.Errorf("writing %s: %w", dst, err)
	}
	if err := desc.WriteTable(stdout); err != nil {
		return err
	}
	st, err := os.Stat(dst)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "wrote %s (%.1f MB)\n", dst, float64(st.Size())/1e6)
	return err
}

// parseSize reads "HxW" (or "H×W", or one number for a square).
func parseSize(s string) (graph.Size, error) {
	parts := strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return r == 'x' || r == '×' })
	if len(parts) == 1 {
		parts = append(parts, parts[0])
	}
	if len(parts) != 2 {
		return graph.Size{}, fmt.Errorf("%q is not a size like 64x64", s)
	}
	var dims [2]int
	for i, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n <= 0 {
			return graph.Size{}, fmt.Errorf("%q is not a size like 64x64", s)
		}
		dims[i] = n
	}
	return graph.Size{Height: dims[0], Width: dims[1]}, nil
}

// manifestLatent is the latent size a dynamic UNet is instrumented for: the
// one its model's manifest gives (model.json, or unet/config.json's
// sample_size in an export folder: 96 for 768 px SD 2.x), which is what the
// engine instruments at too, or defaultLatent for a folder without one.
func manifestLatent(dir string) graph.Size {
	if m, err := model.Load(dir); err == nil && m.Latent.Height > 0 && m.Latent.Width > 0 {
		return graph.Size{Height: m.Latent.Height, Width: m.Latent.Width}
	}
	return defaultLatent
}
