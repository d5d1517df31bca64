package runner

import (
	"reflect"
	"testing"
)

func TestFailoverOrder(t *testing.T) {
	nodes := []string{"a", "b", "c"}
	for _, tc := range []struct {
		index int
		want  []string
	}{
		{0, []string{"a", "b", "c"}},
		{1, []string{"b", "c", "a"}},
		{2, []string{"c", "a", "b"}},
		{4, []string{"b", "c", "a"}}, // more database nodes than REMOTE_NODES
		{-1, []string{"a", "b", "c"}},
	} {
		if got := failoverOrder(nodes, tc.index); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("index %d: %q, want %q", tc.index, got, tc.want)
		}
	}
	if got := failoverOrder(nodes, 1); &got[0] == &nodes[1] {
		t.Error("the order shares REMOTE_NODES' array")
	}
}
