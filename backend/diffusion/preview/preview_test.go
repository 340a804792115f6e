package preview

import (
	"sync"
	"testing"
	"time"
)

func TestRender(t *testing.T) {
	p, err := NewProjector([][3]float64{{1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {0.5, 0.5, 0.5}}, []float64{0, 0, -1}, 4)
	if err != nil {
		t.Fatal(err)
	}
	// 1×2 latent: channel-major.
	z := []float32{-1, 1, 0, 0.5, 0, 0, 0, 2}
	dst := make([]byte, 6)
	if err := p.Render(z, 1, 2, dst); err != nil {
		t.Fatal(err)
	}
	want := []byte{0, 127, 0, 255, 255, 127}
	if string(dst) != string(want) {
		t.Fatalf("rgb = %v, want %v", dst, want)
	}
	if err := p.Render(z, 2, 2, dst); err == nil {
		t.Fatal("wrong size accepted")
	}
	if _, err := NewProjector([][3]float64{{1, 0, 0}}, nil, 4); err == nil {
		t.Fatal("matrix of 1 row accepted for 4 channels")
	}
}

// A consumer that blocks does not block Offer, and when it resumes it gets
// the newest preview of each row, not the backlog.
func TestPumpNeverBlocksAndKeepsNewest(t *testing.T) {
	release := make(chan struct{})
	var mu sync.Mutex
	var got []Image
	p := NewPump(func(img Image) {
		<-release
		mu.Lock()
		got = append(got, img)
		mu.Unlock()
	})
	p.Offer(Image{Row: 0, Step: 1})
	time.Sleep(10 * time.Millisecond) // let the consumer take step 1 and block
	start := time.Now()
	for step := 2; step <= 1000; step++ {
		p.Offer(Image{Row: 0, Step: step})
		p.Offer(Image{Row: 1, Step: step})
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("2000 offers to a blocked consumer took %v", d)
	}
	close(release)
	p.Close()
	p.Offer(Image{Row: 0, Step: 1001}) // after Close: dropped
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 3 || got[0].Step != 1 || got[1].Step != 1000 || got[2].Step != 1000 || got[1].Row != 0 || got[2].Row != 1 {
		t.Fatalf("delivered %+v; want step 1, then the newest of rows 0 and 1", got)
	}
}
