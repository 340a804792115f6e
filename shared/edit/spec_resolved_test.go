package edit

import (
	"reflect"
	"testing"
)

func TestResolvedSpecResolvesToItself(t *testing.T) {
	seed := uint64(7)
	s := Spec{Source: "a red circle", Targets: []string{"a blue circle"}, Seed: &seed, Reweights: map[string]float64{"blue": 2}}
	d := tinyDefaults("tiny")
	r, err := s.Resolve(d)
	if err != nil {
		t.Fatal(err)
	}
	full := r.Spec()
	if full.Steps == nil || *full.Steps != 50 || full.Scheduler != "ddim" || full.Cross == nil {
		t.Fatalf("resolved spec lacks defaults: %+v", full)
	}
	r2, err := full.Resolve(d)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(r, r2) {
		t.Errorf("resolving the resolved spec changed it:\n%+v\n%+v", r, r2)
	}
}
