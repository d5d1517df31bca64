package config

import (
	"strings"
	"testing"
)

func TestValidHost(t *testing.T) {
	for _, tc := range []struct {
		host string
		want bool
	}{
		{"10.0.0.11", true},
		{"::1", true},
		{"n0011", true},
		{"node-11.cluster.example", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"a." + strings.Repeat("b", 63), true},
		{"-node", false},
		{"node-", false},
		{"no_de", false},
		{"node..x", false},
		{"", false},
		{"node.", false},
		{"10.0.0.256", false}, // a mistyped IP, not a name
		{"n\x00de", false},
		{"nöde", false},
	} {
		if got := validHost(tc.host); got != tc.want {
			t.Errorf("validHost(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}
}
