package cluster

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestDeploymentDocListsPermissions: the server configuration in
// docs/deployment.md grants each role exactly what Permissions declares,
// so the documented example is the tested one.
func TestDeploymentDocListsPermissions(t *testing.T) {
	doc, err := os.ReadFile("../../docs/deployment.md")
	must(t, err)
	text := string(doc)
	start := strings.Index(text, "authorization {")
	if start < 0 {
		t.Fatal("docs/deployment.md has no authorization block")
	}
	// Each user's publish list, then its subscribe list.
	lists := regexp.MustCompile(`(?s)(publish|subscribe): \{ allow: \[(.*?)\]`).FindAllStringSubmatch(text[start:], -1)
	quoted := regexp.MustCompile(`"([^"]+)"`)
	var got [][]string
	for _, l := range lists {
		var subjects []string
		for _, q := range quoted.FindAllStringSubmatch(l[2], -1) {
			subjects = append(subjects, q[1])
		}
		got = append(got, subjects)
	}
	want := [][]string{GatewayPermissions.Publish, GatewayPermissions.Subscribe, WorkerPermissions.Publish, WorkerPermissions.Subscribe}
	if len(got) != len(want) {
		t.Fatalf("the authorization block has %d allow lists, want 4 (publish and subscribe of the gateway, then the worker)", len(got))
	}
	for i, name := range []string{"gateway publish", "gateway subscribe", "worker publish", "worker subscribe"} {
		g, w := slices.Clone(got[i]), slices.Clone(want[i])
		slices.Sort(g)
		slices.Sort(w)
		if !slices.Equal(g, w) {
			t.Errorf("%s: docs/deployment.md allows %q, Permissions %q", name, g, w)
		}
	}
}
