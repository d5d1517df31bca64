package demo

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The demo's sets: a level 0 every fullEvery sets, and expiry keeps the
// newest sets with the level 0 they build on, so that every kept set stays
// usable.
func TestExpired(t *testing.T) {
	var present []int
	for id := 1; id <= 14; id++ {
		present = append(present, id)
		gone := expired(present)
		for _, g := range gone {
			present = removeID(present, g)
		}
		if len(present) > keepSets+1 {
			t.Errorf("after id_%d: %d sets kept: %v", id, len(present), present)
		}
		// Every kept set is a level 0 or has a level 0 before it.
		if levelOf(present[0]) != 0 {
			t.Errorf("after id_%d: the oldest kept set id_%d is not a level 0: %v", id, present[0], present)
		}
		if got := fmt.Sprint(present); id == 7 && got != "[5 6 7]" || id == 8 && got != "[5 6 7 8]" || id == 10 && got != "[5 8 9 10]" || id == 11 && got != "[9 10 11]" {
			t.Errorf("after id_%d: kept %s", id, got)
		}
	}
	if fmt.Sprint(expired([]int{1, 2, 3, 4})) != "[]" || fmt.Sprint(expired([]int{1, 2, 3, 4, 5})) != "[2]" {
		t.Errorf("expired: %v %v", expired([]int{1, 2, 3, 4}), expired([]int{1, 2, 3, 4, 5}))
	}
}

func removeID(list []int, id int) []int {
	var out []int
	for _, x := range list {
		if x != id {
			out = append(out, x)
		}
	}
	return out
}

// The running demo prints each scheduled cycle's result per node as it
// ends, with the node's health, and its backup list keeps usable sets
// while new ones arrive and old ones expire.
func TestDemoCycles(t *testing.T) {
	var out bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := Run(ctx, Options{Out: &out, Cycle: "@every 1s", Arrival: 600 * time.Millisecond, Cycles: 3}); err != nil {
		t.Fatalf("demo: %v\n%s", err, out.String())
	}
	got := out.String()
	for _, node := range []string{"n0011 (node_0)", "n0012 (node_1)"} {
		re := regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  cycle of Connection1 on ` + regexp.QuoteMeta(node) + `: (ok|failing)[^|\n]* \| copied \d+ .*, failed \d+`)
		if n := len(re.FindAllString(got, -1)); n < 3 {
			t.Errorf("%d cycle lines of %s, want 3 or more:\n%s", n, node, got)
		}
	}
	if !regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ  new backup set id_4 \(level 1\) on the source$`).MatchString(got) {
		t.Errorf("no arrival line:\n%s", got)
	}
	// The last backup list: a level 0 is kept, every set usable.
	i := strings.LastIndex(got, "backup sets of DEMO_DB")
	if i < 0 || i == strings.Index(got, "backup sets of DEMO_DB") {
		t.Fatalf("no backup list at the end:\n%s", got)
	}
	rows := strings.Split(strings.TrimSpace(got[i:]), "\n")[2:]
	level0 := false
	for _, r := range rows {
		f := strings.Fields(r)
		if len(f) < 5 || f[5] != "yes" {
			t.Errorf("a set is not usable: %q\n%s", r, got[i:])
		}
		level0 = level0 || len(f) > 1 && f[1] == "0"
	}
	if !level0 || len(rows) < 3 {
		t.Errorf("the backup list keeps no level 0:\n%s", got[i:])
	}
}
