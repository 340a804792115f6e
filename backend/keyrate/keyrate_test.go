package keyrate

import (
	"fmt"
	"testing"
	"time"
)

func TestBurstThenRefusedPerKey(t *testing.T) {
	l, err := New(0.001, 3) // no refill within the test
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("event %d of a burst of 3 refused", i+1)
		}
	}
	ok, wait := l.Allow("a")
	if ok || wait < time.Hour {
		t.Fatalf("fourth event: ok=%v, retry after %v; want refused for a long while", ok, wait)
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Error("another key was limited by the first's events")
	}
}

func TestForgetsFullBucketsAndBoundsKeys(t *testing.T) {
	// 6000 a minute in bursts of 1: a bucket is full again after 10 ms.
	l, err := New(6000, 1)
	if err != nil {
		t.Fatal(err)
	}
	l.Allow("x")
	time.Sleep(20 * time.Millisecond) // at least the refill time
	l.Allow("y")
	if n := l.Len(); n != 1 {
		t.Errorf("%d buckets kept; the refilled one should be forgotten", n)
	}
	slow, _ := New(0.001, 1)
	slow.max = 10
	for i := range 50 {
		slow.Allow(fmt.Sprint(i))
	}
	if n := slow.Len(); n != 10 {
		t.Errorf("%d buckets kept, want the bound 10", n)
	}
	if ok, _ := slow.Allow("49"); ok {
		t.Error("the most recent key was forgotten")
	}
}

func TestNewRejectsBadSettings(t *testing.T) {
	for _, tc := range []struct {
		rate  float64
		burst int
	}{{0, 1}, {-1, 1}, {1, 0}} {
		if _, err := New(tc.rate, tc.burst); err == nil {
			t.Errorf("New(%v, %d) accepted", tc.rate, tc.burst)
		}
	}
}
