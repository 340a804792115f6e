package main

import (
	"io"
	"reflect"
	"strings"
	"testing"

	"reword/shared/edit"
)

// TestBlendFlagsBelongToTheirTarget: --blend and --blend-exclude apply to
// the --to before them; a target without them is not blended, and a
// --blend before any --to says where it goes.
func TestBlendFlagsBelongToTheirTarget(t *testing.T) {
	parse := func(args ...string) (edit.Spec, error) {
		fs := newFlagSet("edit", "", io.Discard)
		f := addEditFlags(fs)
		var s edit.Spec
		if err := parseFlags(fs, args); err != nil {
			return s, err
		}
		return s, f.apply(&s)
	}
	s, err := parse("--to", "a blue circle", "--to", "a red square", "--to", "a red circle on grass",
		"--blend", "grass", "--blend", "circle", "--blend-exclude", "red")
	if err != nil {
		t.Fatal(err)
	}
	want := []edit.Blend{{}, {}, {Words: []string{"grass", "circle"}, Exclude: []string{"red"}}}
	if !reflect.DeepEqual(s.Blend, want) || len(s.Targets) != 3 {
		t.Errorf("blend %+v, targets %q; want %+v", s.Blend, s.Targets, want)
	}
	if _, err := parse("--blend", "cat,tiger", "--to", "a tiger"); err == nil || !strings.Contains(err.Error(), "put --blend after that target's --to") {
		t.Errorf("--blend before --to: %v", err)
	}
	if _, err := parse("--to", "a tiger", "--blend", " , "); err == nil || !strings.Contains(err.Error(), "no words") {
		t.Errorf("--blend without words: %v", err)
	}
}
