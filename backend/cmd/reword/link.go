package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"reword/shared/edit"
)

func init() {
	register(command{
		name:    "link",
		summary: "encode or decode a shareable edit link",
		run:     runLink,
	})
}

const linkSynopsis = "encode SPEC.json | decode FRAGMENT"

func runLink(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("link", linkSynopsis, stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: reword link %s\n\n", linkSynopsis)
		fmt.Fprintln(stderr, "  encode SPEC.json  print the link fragment (the part after #) of an edit spec; - reads standard input")
		fmt.Fprintln(stderr, "  decode FRAGMENT   print the edit spec of a link fragment, a #fragment or a whole URL as JSON")
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return usageError("want %s", linkSynopsis)
	}
	switch action, arg := fs.Arg(0), fs.Arg(1); action {
	case "encode":
		data, err := readSpecFile(arg)
		if err != nil {
			return err
		}
		spec, err := edit.ParseSpec(data)
		if err != nil {
			return fmt.Errorf("%s: %w", arg, err)
		}
		link, err := edit.EncodeLink(spec)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(stdout, link)
		return err
	case "decode":
		spec, err := edit.DecodeLink(arg)
		if err != nil {
			return err
		}
		js, err := spec.MarshalJSON()
		if err != nil {
			return err
		}
		var out bytes.Buffer
		if err := json.Indent(&out, js, "", "  "); err != nil {
			return err
		}
		out.WriteByte('\n')
		_, err = stdout.Write(out.Bytes())
		return err
	default:
		return usageError("unknown action %q: want encode or decode", action)
	}
}

// readSpecFile reads a spec file ("-" is standard input), refusing files
// larger than a spec may be.
func readSpecFile(path string) ([]byte, error) {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, edit.MaxSpecBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(data) > edit.MaxSpecBytes {
		return nil, fmt.Errorf("%s is larger than an edit spec may be (%d bytes)", path, edit.MaxSpecBytes)
	}
	return data, nil
}
