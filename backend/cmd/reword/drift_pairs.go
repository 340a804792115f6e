package main

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// driftPair is a prompt and its one-word swap; group names the kind of swap
// the report sums it under.
type driftPair struct {
	group, source, target string
}

// groupFile is the group of pairs given without one.
const groupFile = "given"

// scenePairs builds n colour swaps and n shape swaps from the tiny model's
// captions, the same prompts bench edit edits (all three prompt sets).
func scenePairs(n int) ([]driftPair, error) {
	var out []driftPair
	for _, kind := range []string{kindColour, kindShape} {
		for i := 0; i < n; i++ {
			e, err := newEdit(kind, uint64(i), 0)
			if err != nil {
				return nil, err
			}
			out = append(out, driftPair{group: kind, source: e.source, target: e.target})
		}
	}
	return out, nil
}

// parsePair reads `SOURCE -> TARGET`, optionally led by `[group]`.
func parsePair(line string) (driftPair, error) {
	p := driftPair{group: groupFile}
	s := strings.TrimSpace(line)
	if strings.HasPrefix(s, "[") {
		end := strings.Index(s, "]")
		if end < 0 {
			return p, fmt.Errorf("%q: a group starts with [ and ends with ]", line)
		}
		p.group = strings.TrimSpace(s[1:end])
		s = s[end+1:]
		if p.group == "" {
			return p, fmt.Errorf("%q: empty group name in []", line)
		}
	}
	parts := strings.Split(s, "->")
	if len(parts) != 2 {
		return p, fmt.Errorf("%q: want `SOURCE -> TARGET` (one \"->\"), optionally led by `[group]`", line)
	}
	p.source, p.target = strings.TrimSpace(parts[0]), strings.TrimSpace(parts[1])
	if p.source == "" || p.target == "" {
		return p, fmt.Errorf("%q: both sides of \"->\" need a prompt", line)
	}
	return p, nil
}

// readPairs reads one pair per line (see parsePair); blank lines and lines
// starting with # are skipped.
func readPairs(r io.Reader, name string) ([]driftPair, error) {
	var out []driftPair
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		t := strings.TrimSpace(sc.Text())
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		p, err := parsePair(t)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no pairs: want lines `SOURCE -> TARGET`", name)
	}
	return out, nil
}

// pairFlags collects repeated -pair flags.
type pairFlags []driftPair

func (f *pairFlags) String() string { return fmt.Sprint(len(*f), " pairs") }

func (f *pairFlags) Set(v string) error {
	p, err := parsePair(v)
	if err != nil {
		return err
	}
	*f = append(*f, p)
	return nil
}
