package main

import (
	"bytes"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"reword/models/tiny/scene"
	"reword/models/tiny/tinytest"
)

func TestInvertCommand(t *testing.T) {
	model := tinytest.Private(t)
	dir := t.TempDir()
	cap := scene.NewCaption([]scene.Mention{{Object: scene.Object{Shape: scene.Square, Colour: scene.Red, Position: scene.Left}, NamesColour: true, NamesPosition: true}}, scene.PlainGray, false)
	sc, err := scene.SceneFor(rand.New(rand.NewPCG(1, 2)), cap)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := png.Encode(&b, sc.Render()); err != nil {
		t.Fatal(err)
	}
	photoPath := filepath.Join(dir, "photo.png")
	if err := os.WriteFile(photoPath, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	var stdout, stderr bytes.Buffer
	args := []string{"invert", "--model", model, "--threads", "1", "--image", photoPath, "--prompt", cap.Text,
		"--method", "npi", "--steps", "4", "--to", "a blue square on the left", "--to", "a green square on the left", "--out", out}
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, name := range []string{"reconstruction.png", "target-1.png", "target-2.png"} {
		checkPNGSize(t, filepath.Join(out, name), 64)
	}
	if !strings.Contains(stdout.String(), "npi inversion") {
		t.Errorf("stdout does not report the inversion: %s", stdout.String())
	}

	corrupt := filepath.Join(dir, "corrupt.png")
	if err := os.WriteFile(corrupt, b.Bytes()[:100], 0o644); err != nil {
		t.Fatal(err)
	}
	// noModel does not exist: the cases naming it are reported before
	// any model loads.
	noModel := filepath.Join(dir, "no-model")
	for _, tc := range []struct {
		args []string
		code int
		say  string
	}{
		{[]string{"invert", "--model", model, "--threads", "1", "--image", corrupt, "--prompt", cap.Text, "--to", "x", "--out", out}, 1, "corrupt"},
		{[]string{"invert", "--model", noModel, "--image", corrupt, "--prompt", cap.Text, "--to", "x", "--out", filepath.Join(dir, "new")}, 1, "corrupt"},
		{[]string{"invert", "--model", noModel, "--image", photoPath, "--prompt", cap.Text, "--to", "x", "--out", out}, 2, "already holds reconstruction.png from an earlier run"},
		{[]string{"invert", "--model", noModel, "--image", photoPath, "--prompt", cap.Text, "--to", "x", "--guidance", "-1", "--out", filepath.Join(dir, "new")}, 2, "--guidance -1: want a scale from 0 to 30"},
		{[]string{"invert", "--model", noModel, "--image", photoPath, "--prompt", cap.Text, "--to", "x", "--steps", "-1", "--out", filepath.Join(dir, "new")}, 2, "--steps -1: want 1 to 150"},
		{[]string{"invert", "--model", noModel, "--image", photoPath, "--prompt", cap.Text, "--to", "x", "--method", "fast", "--out", filepath.Join(dir, "new")}, 2, "inversion must be one of direct, npi, ddim"},
		{[]string{"invert", "--prompt", cap.Text, "--to", "x", "--out", out}, 2, "--image is required"},
		{[]string{"invert", "--image", photoPath, "--prompt", cap.Text, "--to", "x", "--fit", "stretch", "--out", out}, 2, "stretch"},
		{[]string{"invert", "--image", photoPath, "--prompt", cap.Text, "--out", out}, 2, "--to"},
	} {
		stderr.Reset()
		if code := run(tc.args, &stdout, &stderr); code != tc.code || !strings.Contains(stderr.String(), tc.say) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d mentioning %q", tc.args[1:], code, stderr.String(), tc.code, tc.say)
		}
	}
}
