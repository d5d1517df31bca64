package sync

import (
	"context"
	"fmt"
	"testing"
)

// BenchmarkScheduler hands out 5,000 small files of 25 sets, as a copy of
// the benchmark's small tree does.
func BenchmarkScheduler(b *testing.B) {
	var acts []Action
	for i := range 5000 {
		set := SetKey(fmt.Sprintf("DB/id_%d/level_0", i/200))
		acts = append(acts, Action{Op: OpCopy, Path: fmt.Sprintf("%s/node_0/data_%d", set, i), Set: set, Metadata: i%200 == 199})
	}
	for range b.N {
		s := newScheduler(context.Background(), append([]Action(nil), acts...), nil)
		for {
			a, ok := s.next()
			if !ok {
				break
			}
			s.done(a, nil)
		}
	}
}
