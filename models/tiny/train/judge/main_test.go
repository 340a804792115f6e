package main

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"reword/models/tiny/scene"
	"reword/models/tiny/train/npy"
	"reword/shared/clip"
)

func TestPromptsAreTheBenchmarks(t *testing.T) {
	dir := t.TempDir()
	if err := run([]string{"prompts", "-out", dir, "-n", "5"}, new(bytes.Buffer)); err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(filepath.Join(dir, "prompts.txt"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(text)), "\n")
	for i, c := range scene.EvalPrompts(5, 1) {
		if lines[i] != c.Text {
			t.Errorf("prompt %d is %q; bench model uses %q", i, lines[i], c.Text)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "input_ids.npy"))
	if err != nil {
		t.Fatal(err)
	}
	if want := 5 * clip.ContextLength * 4; len(b) < want {
		t.Errorf("input_ids.npy has %d bytes; want %d of data after the header", len(b), want)
	}
}

// Drawn scenes that fit their prompts must score (nearly) perfectly, and the
// same scenes judged against shuffled prompts must not.
func TestScoreDrawnScenes(t *testing.T) {
	const n = 40
	prompts := scene.EvalPrompts(n, 1)
	rng := rand.New(rand.NewPCG(3, 4))
	const px = scene.ImageSize * scene.ImageSize * 3
	data := make([]byte, 0, 2*n*px)
	for seed := 0; seed < 2; seed++ {
		for _, c := range prompts {
			s, err := scene.SceneFor(rng, c)
			if err != nil {
				t.Fatal(err)
			}
			img := s.Render()
			for p := 0; p < scene.ImageSize*scene.ImageSize; p++ {
				data = append(data, img.Pix[4*p:4*p+3]...)
			}
		}
	}
	path := filepath.Join(t.TempDir(), "images.npy")
	if err := npy.Write(path, "|u1", []int{2 * n, scene.ImageSize, scene.ImageSize, 3}, data); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run([]string{"score", "-images", path, "-n", "40"}, &out); err != nil {
		t.Fatal(err)
	}
	var r map[string]float64
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if r["images"] != 2*n || r["colour"] < 0.99 || r["position"] < 0.99 || r["shape"] < 0.9 {
		t.Errorf("drawn scenes scored %s", out.String())
	}
	// The same images in reverse order: each judged against another prompt.
	reversed := make([]byte, 0, len(data))
	for i := 2*n - 1; i >= 0; i-- {
		reversed = append(reversed, data[i*px:(i+1)*px]...)
	}
	if err := npy.Write(path, "|u1", []int{2 * n, scene.ImageSize, scene.ImageSize, 3}, reversed); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run([]string{"score", "-images", path, "-n", "40"}, &out); err != nil {
		t.Fatal(err)
	}
	json.Unmarshal(out.Bytes(), &r)
	if r["colour"] > 0.5 && r["position"] > 0.5 {
		t.Errorf("scenes judged against other prompts scored %s", out.String())
	}
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	wrong := filepath.Join(dir, "wrong.npy")
	npy.Write(wrong, "|u1", []int{3, 64, 64, 3}, make([]byte, 3*64*64*3))
	for _, args := range [][]string{
		nil,
		{"frobnicate"},
		{"prompts"},
		{"score"},
		{"score", "-images", filepath.Join(dir, "missing.npy")},
		{"score", "-images", wrong, "-n", "2"}, // 3 images are not k×2
		{"prompts", "-out", dir, "-n", "0"},
		{"backgrounds"},
		{"backgrounds", "-images", filepath.Join(dir, "missing.npy")},
	} {
		if err := run(args, new(bytes.Buffer)); err == nil {
			t.Errorf("judge %q: no error", args)
		}
	}
}

// TestBackgroundsOfDrawnScenes: each image's background, in order, as the
// evaluator sees it.
func TestBackgroundsOfDrawnScenes(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	obj := scene.Object{Shape: scene.Circle, Colour: scene.Red, Size: scene.Big, Position: scene.Left}
	var data []byte
	var want []string
	for _, bg := range scene.Backgrounds {
		img := scene.Place(rng, bg, []scene.Object{obj}).Render()
		for p := 0; p < scene.ImageSize*scene.ImageSize; p++ {
			data = append(data, img.Pix[4*p:4*p+3]...)
		}
		want = append(want, bg.String())
	}
	path := filepath.Join(t.TempDir(), "images.npy")
	if err := npy.Write(path, "|u1", []int{len(want), scene.ImageSize, scene.ImageSize, 3}, data); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run([]string{"backgrounds", "-images", path}, &out); err != nil {
		t.Fatal(err)
	}
	var got struct{ Backgrounds []string }
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if strings.Join(got.Backgrounds, ",") != strings.Join(want, ",") {
		t.Errorf("backgrounds %v, want %v", got.Backgrounds, want)
	}
}
