package editjob

import (
	"encoding/json"
	"testing"

	"reword/backend/store"
	"reword/shared/edit"
)

// TestRecordKeyCarriesTheSpecsMeaning: a record is found by the resolved
// spec's JSON under the version of what its fields mean, so a record
// stored when the same JSON ran another edit (before norm took the
// source's mean alone, the plain hash of the JSON) is not served, while
// equal specs share a key and different ones do not.
func TestRecordKeyCarriesTheSpecsMeaning(t *testing.T) {
	seed := uint64(3)
	norm := edit.Fraction(0.4)
	s := edit.Spec{Source: "a red circle", Targets: []string{"a blue circle"}, Seed: &seed, Norm: &norm}
	key, err := RecordKey(s)
	if err != nil {
		t.Fatal(err)
	}
	js, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if key == store.Hash(js) {
		t.Error("the record key is the plain hash of the spec's JSON, which records of the earlier norm were stored under")
	}
	if again, _ := RecordKey(s.Clone()); again != key {
		t.Errorf("equal specs got keys %s and %s", key, again)
	}
	other := s.Clone()
	other.Norm = &edit.Window{}
	if k, _ := RecordKey(other); k == key {
		t.Error("specs that differ in norm share a record key")
	}
}
