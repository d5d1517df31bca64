package sync

import (
	"context"
	gosync "sync"
)

// scheduler hands copy actions to workers in plan order, except that a
// set's metadata files become runnable only once every data file of the set
// has been copied, and are held back for good when one failed (DESIGN §3.5:
// a set becomes visible as complete last).
type scheduler struct {
	mu      gosync.Mutex
	cond    *gosync.Cond
	pending []Action
	sets    map[SetKey]*setState
	stopped bool
	// ctx and drain are checked on every next, so that they take effect at
	// once; stop wakes the workers waiting in next.
	ctx   context.Context
	drain <-chan struct{}
}

type setState struct {
	dataLeft int
	failed   bool
}

func newScheduler(ctx context.Context, actions []Action, drain <-chan struct{}) *scheduler {
	s := &scheduler{pending: actions, sets: map[SetKey]*setState{}, ctx: ctx, drain: drain}
	s.cond = gosync.NewCond(&s.mu)
	for _, a := range actions {
		st := s.sets[a.Set]
		if st == nil {
			st = &setState{}
			s.sets[a.Set] = st
		}
		if !a.Metadata {
			st.dataLeft++
		}
	}
	return s
}

// stop makes next return false from now on, waking waiting workers.
func (s *scheduler) stop() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	s.cond.Broadcast()
}

// next returns the next runnable action, waiting while only metadata of
// sets with data in flight is left. It returns false when nothing is left
// to run or after stop.
func (s *scheduler) next() (Action, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.stopped || s.ctx.Err() != nil || drained(s.drain) {
			return Action{}, false
		}
		waiting := false
		for i, a := range s.pending {
			st := s.sets[a.Set]
			if a.Metadata && st.failed {
				continue // held; reported by held()
			}
			if a.Metadata && st.dataLeft > 0 {
				waiting = true
				continue
			}
			// The scheduler owns pending: remove in place. Usually i is 0
			// (data files come first), which costs nothing.
			if i == 0 {
				s.pending = s.pending[1:]
			} else {
				s.pending = append(s.pending[:i], s.pending[i+1:]...)
			}
			return a, true
		}
		if !waiting {
			return Action{}, false
		}
		s.cond.Wait()
	}
}

// done records the outcome of an action handed out by next.
func (s *scheduler) done(a Action, err error) {
	s.mu.Lock()
	st := s.sets[a.Set]
	if !a.Metadata {
		st.dataLeft--
	}
	if err != nil {
		st.failed = true
	}
	s.mu.Unlock()
	s.cond.Broadcast()
}

// held returns the metadata actions never run because their set failed.
func (s *scheduler) held() []Action {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Action
	for _, a := range s.pending {
		if a.Metadata && s.sets[a.Set].failed {
			out = append(out, a)
		}
	}
	return out
}
