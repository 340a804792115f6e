package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"reword/shared/clip"
)

func init() {
	register(command{
		name:    "tokenize",
		summary: "print the CLIP tokens of a prompt",
		run:     runTokenize,
	})
}

// tokenizeJSON is the --json output: ids unpadded (with BOS and EOS), their
// vocabulary strings and byte offsets [start, end) into the prompt.
type tokenizeJSON struct {
	IDs     []int32  `json:"ids"`
	Tokens  []string `json:"tokens"`
	Offsets [][2]int `json:"offsets"`
}

func runTokenize(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("tokenize", "TEXT", stderr)
	asJSON := fs.Bool("json", false, `print one JSON object {"ids":[...],"tokens":[...],"offsets":[[start,end],...]}`)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError("want exactly one TEXT argument (quote the prompt), got %d", fs.NArg())
	}
	text := fs.Arg(0)
	tok, err := clip.Default()
	if err != nil {
		return err
	}
	enc := tok.Encode(text)
	if *asJSON {
		out := tokenizeJSON{IDs: enc.IDs, Tokens: enc.Tokens, Offsets: make([][2]int, len(enc.Spans))}
		for i, s := range enc.Spans {
			out.Offsets[i] = [2]int{s.Start, s.End}
		}
		e := json.NewEncoder(stdout)
		e.SetEscapeHTML(false) // keep "<|startoftext|>" readable
		return e.Encode(out)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%5s  %-7s  %-12s  %-18s  %s\n", "index", "id", "bytes", "token", "text")
	for i, id := range enc.IDs {
		s := enc.Spans[i]
		fmt.Fprintf(&b, "%5d  %-7d  %-12s  %-18q  %q\n", i, id, fmt.Sprintf("[%d,%d)", s.Start, s.End), enc.Tokens[i], text[s.Start:s.End])
	}
	if tr := enc.Truncated; tr.Dropped > 0 {
		fmt.Fprintf(&b, "truncated: %d tokens past the %d-token context are ignored, from byte %d: %q\n",
			tr.Dropped, clip.ContextLength, tr.Start, text[tr.Start:])
	}
	_, err = io.WriteString(stdout, b.String())
	return err
}
