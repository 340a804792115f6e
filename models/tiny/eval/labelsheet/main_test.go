package main

import (
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"reword/models/tiny/scene"
)

// benchFolder writes n drawn scenes as `reword bench model -images` writes
// its images: p%03d-k%d.png for seeds k = 0 and 1, and index.tsv.
func benchFolder(t *testing.T, n int) (dir string, imgs map[string]image.Image) {
	t.Helper()
	dir = t.TempDir()
	imgs = map[string]image.Image{}
	index := "file\tprompt\tseed\tshape\tcolour\tsize\tposition\tbackground\n"
	for k := 0; k < 2; k++ {
		for p := 0; p < n; p++ {
			s, c := scene.TrainingExample(9, k*n+p)
			name := fmt.Sprintf("p%03d-k%d.png", p, k)
			img := s.Render()
			f, err := os.Create(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			if err := png.Encode(f, img); err != nil {
				t.Fatal(err)
			}
			f.Close()
			imgs[name] = img
			index += fmt.Sprintf("%s\t%s\t%d\tcircle\tred\tbig\tleft\t-\n", name, c.Text, 100+p)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "index.tsv"), []byte(index), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, imgs
}

func TestSheetsThenAssemble(t *testing.T) {
	const n = 37 // two sheets, the second part-filled
	dir, imgs := benchFolder(t, n)
	sheets := filepath.Join(t.TempDir(), "sheets")
	if err := run([]string{"sheets", "-images", dir, "-suffix", "-k1.png", "-out", sheets, "-seed", "3"}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"sheet-00.png", "sheet-01.png"} {
		if _, err := os.Stat(filepath.Join(sheets, name)); err != nil {
			t.Errorf("want %s: %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(sheets, "sheet-02.png")); err == nil {
		t.Error("37 tiles made a third sheet")
	}
	order, err := readOrder(filepath.Join(sheets, "order.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	shuffled := false
	for i, f := range order {
		if !strings.HasSuffix(f, "-k1.png") || seen[f] {
			t.Fatalf("order.tsv tile %d is %s: want each -k1 image once", i, f)
		}
		seen[f] = true
		shuffled = shuffled || f != fmt.Sprintf("p%03d-k1.png", i)
	}
	if len(order) != n || !shuffled {
		t.Fatalf("order.tsv holds %d tiles (want %d), shuffled %v", len(order), n, shuffled)
	}
	if err := run([]string{"sheets", "-images", dir, "-suffix", "-k1.png", "-out", sheets}); err == nil {
		t.Error("sheets wrote into an existing folder")
	}

	set := filepath.Join(t.TempDir(), "set")
	want := labelAll(t, dir, sheets, set, "labels")
	tsv, err := os.ReadFile(filepath.Join(set, "labels.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(tsv)), "\n")
	if len(lines) != n+1 || lines[0] != "tile\tprompt\tseed\tlabel" {
		t.Fatalf("labels.tsv: %d lines, header %q", len(lines), lines[0])
	}
	f, err := os.Open(filepath.Join(set, "generated.png"))
	if err != nil {
		t.Fatal(err)
	}
	grid, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	s := scene.ImageSize
	for k, line := range lines[1:] {
		cols := strings.Split(line, "\t")
		file := fmt.Sprintf("p%03d-k1.png", k) // index order: prompt order
		_, c := scene.TrainingExample(9, n+k)
		if cols[0] != fmt.Sprint(k) || cols[1] != c.Text || cols[2] != fmt.Sprint(100+k) || cols[3] != want[file] {
			t.Fatalf("labels.tsv row %d = %q, want tile %d, %q, seed %d, %s", k, line, k, c.Text, 100+k, want[file])
		}
		at := image.Pt((k%perGrid)*s, (k/perGrid)*s)
		for y := 0; y < s; y++ {
			for x := 0; x < s; x++ {
				r1, g1, b1, _ := grid.At(at.X+x, at.Y+y).RGBA()
				r2, g2, b2, _ := imgs[file].At(x, y).RGBA()
				if r1 != r2 || g1 != g2 || b1 != b2 {
					t.Fatalf("generated.png tile %d differs from %s at (%d,%d)", k, file, x, y)
				}
			}
		}
	}
	labelFile := filepath.Join(t.TempDir(), "labels.txt")
	os.WriteFile(labelFile, []byte(strings.Repeat("circle\n", n)), 0o644)
	if err := run([]string{"assemble", "-images", dir, "-sheets", sheets, "-labels", labelFile, "-out", set}); err == nil ||
		!strings.Contains(err.Error(), "already holds") {
		t.Errorf("assembling over a set: %v, want a refusal", err)
	}
}

func TestAssembleRejectsBadLabels(t *testing.T) {
	dir, _ := benchFolder(t, 4)
	sheets := filepath.Join(t.TempDir(), "sheets")
	if err := run([]string{"sheets", "-images", dir, "-suffix", "-k0.png", "-out", sheets}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ labels, want string }{
		{"circle square ring", "3 labels for 4 tiles"},
		{"circle square ring hexagon", `"hexagon" is none of`},
	} {
		file := filepath.Join(t.TempDir(), "labels.txt")
		os.WriteFile(file, []byte(c.labels), 0o644)
		err := run([]string{"assemble", "-images", dir, "-sheets", sheets, "-labels", file, "-out", filepath.Join(t.TempDir(), "set")})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("labels %q: %v, want an error saying %q", c.labels, err, c.want)
		}
	}
}

func TestRunRejectsBadArguments(t *testing.T) {
	for _, args := range [][]string{nil, {"relabel"}, {"sheets", "-out", "x"}, {"assemble", "-images", "x"}} {
		if err := run(args); err == nil {
			t.Errorf("run(%q) succeeded", args)
		}
	}
	dir, _ := benchFolder(t, 2)
	if err := run([]string{"sheets", "-images", dir, "-suffix", "-k7.png", "-out", filepath.Join(t.TempDir(), "s")}); err == nil ||
		!strings.Contains(err.Error(), "ends in") {
		t.Errorf("a suffix no image has: %v", err)
	}
}

// labelAll assembles labels for every tile of sheets into set under name:
// tile i gets names[i % 6], so each file's label is known.
func labelAll(t *testing.T, images, sheets, set, name string) map[string]string {
	t.Helper()
	order, err := readOrder(filepath.Join(sheets, "order.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"circle", "square", "triangle", "star", "ring", "unclear"}
	byFile := map[string]string{}
	var text strings.Builder
	for i, f := range order {
		byFile[f] = names[i%len(names)]
		fmt.Fprintln(&text, names[i%len(names)])
	}
	file := filepath.Join(t.TempDir(), "labels.txt")
	if err := os.WriteFile(file, []byte(text.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := run([]string{"assemble", "-images", images, "-sheets", sheets, "-labels", file, "-out", set, "-name", name}); err != nil {
		t.Fatal(err)
	}
	return byFile
}

// A second labeller labels the same set from its unpacked images: their
// labels land beside the first's, for the same tiles, and generated.png
// stays as it was.
func TestUnpackForASecondLabeller(t *testing.T) {
	const n = 23
	dir, _ := benchFolder(t, n)
	first := filepath.Join(t.TempDir(), "sheets")
	if err := run([]string{"sheets", "-images", dir, "-suffix", "-k0.png", "-out", first}); err != nil {
		t.Fatal(err)
	}
	set := filepath.Join(t.TempDir(), "set")
	labelAll(t, dir, first, set, "labels")
	gridBefore, err := os.ReadFile(filepath.Join(set, "generated.png"))
	if err != nil {
		t.Fatal(err)
	}

	unpacked := filepath.Join(t.TempDir(), "unpacked")
	if err := run([]string{"unpack", "-set", set, "-out", unpacked}); err != nil {
		t.Fatal(err)
	}
	index, err := os.ReadFile(filepath.Join(unpacked, "index.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(index)), "\n") {
		if len(strings.Split(line, "\t")) != 3 {
			t.Fatalf("the unpacked index.tsv's line %q is not file, prompt and seed alone (no label)", line)
		}
	}
	second := filepath.Join(t.TempDir(), "sheets")
	if err := run([]string{"sheets", "-images", unpacked, "-out", second, "-seed", "2"}); err != nil {
		t.Fatal(err)
	}
	byFile := labelAll(t, unpacked, second, set, "labels-second")

	gridAfter, err := os.ReadFile(filepath.Join(set, "generated.png"))
	if err != nil {
		t.Fatal(err)
	}
	if string(gridAfter) != string(gridBefore) {
		t.Error("assembling the second labeller's labels rewrote generated.png")
	}
	firstRows, err := readSetRows(filepath.Join(set, "labels.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	secondTSV, err := os.ReadFile(filepath.Join(set, "labels-second.tsv"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(secondTSV)), "\n")
	if len(lines) != n+1 {
		t.Fatalf("labels-second.tsv: %d lines, want %d", len(lines), n+1)
	}
	for k, line := range lines[1:] {
		want := fmt.Sprintf("%d\t%s\t%s\t%s", k, firstRows[k].prompt, firstRows[k].seed, byFile[fmt.Sprintf("t%03d.png", k)])
		if line != want {
			t.Fatalf("labels-second.tsv row %d = %q, want %q", k, line, want)
		}
	}

	// Labels of other images do not go into this set, and names are checked.
	other, _ := benchFolder(t, n)
	otherSheets := filepath.Join(t.TempDir(), "sheets")
	if err := run([]string{"sheets", "-images", other, "-suffix", "-k1.png", "-out", otherSheets}); err != nil {
		t.Fatal(err)
	}
	labels := filepath.Join(t.TempDir(), "labels.txt")
	os.WriteFile(labels, []byte(strings.Repeat("circle\n", n)), 0o644)
	for _, c := range []struct{ name, want string }{
		{"labels-third", "other images"},
		{"labels-second", "already holds labels-second.tsv"},
		{"../escape", "must be labels or labels-WORD"},
	} {
		err := run([]string{"assemble", "-images", other, "-sheets", otherSheets, "-labels", labels, "-out", set, "-name", c.name})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("-name %s with other images: %v, want an error saying %q", c.name, err, c.want)
		}
	}
	// A generated.png that is no PNG is reported, not written over.
	broken := filepath.Join(t.TempDir(), "broken")
	os.Mkdir(broken, 0o755)
	os.WriteFile(filepath.Join(broken, "generated.png"), []byte("not a png"), 0o644)
	if err := run([]string{"assemble", "-images", other, "-sheets", otherSheets, "-labels", labels, "-out", broken}); err == nil ||
		!strings.Contains(err.Error(), "generated.png") {
		t.Errorf("assembling beside an unreadable generated.png: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(broken, "generated.png")); string(b) != "not a png" {
		t.Error("assemble wrote over an unreadable generated.png")
	}
	if _, err := os.Stat(filepath.Join(set, "labels-third.tsv")); err == nil {
		t.Error("a refused assemble wrote labels-third.tsv")
	}
	if err := run([]string{"unpack", "-set", set, "-out", unpacked}); err == nil || !strings.Contains(err.Error(), "does not exist yet") {
		t.Errorf("unpacking into an existing folder: %v", err)
	}
	if err := run([]string{"unpack", "-set", first, "-out", filepath.Join(t.TempDir(), "u")}); err == nil {
		t.Error("unpacked a folder that is no labelled set")
	}
}
