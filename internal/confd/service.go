package confd

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	gosync "sync"
	"time"

	"backupsync/internal/control"
	"backupsync/internal/xmlrpc"
)

// Result codes and names of a job. ConfD answers 0/'OK'/'Success'; the
// failure codes are ours (see the package documentation).
const (
	CodeOK           = 0 // the job succeeded
	CodeFailed       = 1 // the job ran and failed, on at least one node
	CodeInvalidParam = 2 // a mandatory parameter is missing, or one is unknown or of a wrong type
	CodeUnknownJob   = 3 // no job of that name
	CodeNotProvided  = 4 // a ConfD job only the database's own ConfD can do
)

var codeNames = map[int]string{
	CodeOK:           "OK",
	CodeFailed:       "ERROR",
	CodeInvalidParam: "INVALID_PARAMETER",
	CodeUnknownJob:   "UNKNOWN_JOB",
	CodeNotProvided:  "NOT_PROVIDED",
}

// localMethod runs the node-local part of a job (a listing, a probe, a
// ping) on the daemon that receives it and never forwards.
const localMethod = "backupsync.confdLocal"

// Service answers the ConfD dialect for the whole cluster of a Surface.
type Service struct {
	// Surface is the plugin surface of this daemon: the cluster (Nodes),
	// this node (Self, Local) and the forwarding of verbs to the others.
	Surface *control.Surface
	// Users returns the logins of the control plane, shown by job_help as
	// the allowed users (every login may run every job); nil shows none.
	Users func() []string
	// Logger receives what jobs did; nil discards.
	Logger *slog.Logger

	// Timeouts of the node-local parts asked of every node; zero values
	// take the defaults.
	PingTimeout, ProbeTimeout, ListTimeout time.Duration

	once    gosync.Once
	started time.Time
	jobIDs  *counter
	rev     *counter
	prefix  string // "<n>" of result_jobid

	masterMu   gosync.Mutex
	masterIP   string
	masterTime time.Time
}

// Default timeouts of the node-local parts.
const (
	DefaultPingTimeout  = 2 * time.Second
	DefaultProbeTimeout = 10 * time.Second
	DefaultListTimeout  = 2 * time.Minute
)

func (s *Service) init() {
	s.once.Do(func() {
		s.started = time.Now()
		dir := filepath.Join(s.Surface.Local.Settings.StateDir, "confd")
		s.jobIDs = newCounter(filepath.Join(dir, "jobid"), 1000)
		s.rev = newCounter(filepath.Join(dir, "revision"), 1)
		s.prefix = nodeIDs(s.Surface.Nodes)[s.selfIndex()]
		if s.PingTimeout == 0 {
			s.PingTimeout = DefaultPingTimeout
		}
		if s.ProbeTimeout == 0 {
			s.ProbeTimeout = DefaultProbeTimeout
		}
		if s.ListTimeout == 0 {
			s.ListTimeout = DefaultListTimeout
		}
	})
}

func (s *Service) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// selfIndex is this node's position in Surface.Nodes (0 when it is not
// listed, as with a settings file without a cluster block).
func (s *Service) selfIndex() int {
	for i, p := range s.Surface.Nodes {
		if p.Name == s.Surface.Self {
			return i
		}
	}
	return 0
}

// Register adds job_exec, job_list, job_help and job_desc (and the
// node-local method the other daemons call) to srv, the server of the
// plugin surface, so that both dialects share one endpoint and its users.
func (s *Service) Register(srv *xmlrpc.Server) {
	s.init()
	srv.Register("job_exec", s.jobExec)
	srv.Register("job_list", func(ctx context.Context, params []any) (any, error) {
		names := make([]string, 0, len(jobs))
		for name := range jobs {
			names = append(names, name)
		}
		slices.Sort(names)
		return s.envelope(outcome{output: names}), nil
	})
	srv.Register("job_help", func(ctx context.Context, params []any) (any, error) {
		j, o := s.lookup(params)
		if j == nil {
			return s.envelope(o), nil
		}
		return s.envelope(outcome{output: s.help(j)}), nil
	})
	srv.Register("job_desc", func(ctx context.Context, params []any) (any, error) {
		j, o := s.lookup(params)
		if j == nil {
			return s.envelope(o), nil
		}
		return s.envelope(outcome{output: j.desc}), nil
	})
	srv.Register(localMethod, s.local)
}

// outcome is what a job did, before it is put into a result dict.
type outcome struct {
	code    int
	desc    string // "" means Success for code 0
	output  any    // nil: no result_output
	changed bool   // the job changed stored state: result_revision
}

func failed(code int, format string, args ...any) outcome {
	return outcome{code: code, desc: fmt.Sprintf(format, args...)}
}

// envelope makes ConfD's result dict of o, with the next job id.
func (s *Service) envelope(o outcome) map[string]any {
	r := map[string]any{
		"result_code":  o.code,
		"result_name":  codeNames[o.code],
		"result_desc":  o.desc,
		"result_jobid": fmt.Sprintf("%s.%d", s.prefix, s.jobIDs.next(s.log())),
	}
	if o.code == CodeOK && o.desc == "" {
		r["result_desc"] = "Success"
	}
	if o.output != nil {
		r["result_output"] = o.output
	}
	if o.changed {
		r["result_revision"] = s.rev.next(s.log())
	}
	return r
}

// lookup finds the job named by params[0] for job_help and job_desc.
func (s *Service) lookup(params []any) (*job, outcome) {
	if len(params) == 0 || params[0] == nil {
		return nil, failed(CodeInvalidParam, "name a job: job_list() lists them")
	}
	name, ok := params[0].(string)
	if !ok {
		return nil, failed(CodeInvalidParam, "the job name must be a string, not %s", xmlrpc.TypeName(params[0]))
	}
	return findJob(name)
}

func findJob(name string) (*job, outcome) {
	key := strings.ToLower(strings.TrimSpace(name))
	if j, ok := jobs[key]; ok {
		return j, outcome{}
	}
	if why, ok := notProvided[key]; ok {
		return nil, failed(CodeNotProvided, "job %s is not provided by backupsync: %s", key, why)
	}
	return nil, failed(CodeUnknownJob, "unknown job %q: job_list() lists the jobs backupsync provides", name)
}

func (s *Service) help(j *job) map[string]any {
	users := []string{}
	if s.Users != nil {
		users = append(users, s.Users()...)
	}
	slices.Sort(users)
	subs := map[string]any{}
	for p, of := range j.substitutes {
		subs[p] = of
	}
	return map[string]any{
		"name":          j.name,
		"description":   j.desc,
		"mandatory":     nonNil(j.mandatory),
		"optional":      nonNil(j.optional),
		"substitutes":   subs,
		"allowed_users": users,
		"read_only":     !j.mutating,
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// jobExec is job_exec(name[, {'params': {...}}]).
func (s *Service) jobExec(ctx context.Context, params []any) (any, error) {
	if len(params) == 0 || params[0] == nil {
		return s.envelope(failed(CodeInvalidParam, "job_exec needs a job name: job_list() lists them")), nil
	}
	name, ok := params[0].(string)
	if !ok {
		return s.envelope(failed(CodeInvalidParam, "the job name must be a string, not %s", xmlrpc.TypeName(params[0]))), nil
	}
	j, o := findJob(name)
	if j == nil {
		return s.envelope(o), nil
	}
	args := map[string]any{}
	if len(params) > 1 && params[1] != nil {
		opts, ok := params[1].(map[string]any)
		if !ok {
			return s.envelope(failed(CodeInvalidParam, "the second argument of job_exec must be a dict like {'params': {...}}, not %s", xmlrpc.TypeName(params[1]))), nil
		}
		switch p := opts["params"].(type) {
		case nil:
		case map[string]any:
			for k, v := range p {
				if v != nil { // None is absent
					args[k] = v
				}
			}
		default:
			return s.envelope(failed(CodeInvalidParam, "'params' must be a dict, not %s", xmlrpc.TypeName(p))), nil
		}
	}
	if len(params) > 2 {
		return s.envelope(failed(CodeInvalidParam, "job_exec takes a job name and one dict, not %d arguments", len(params))), nil
	}
	if o, bad := j.check(args); bad {
		return s.envelope(o), nil
	}
	o = j.run(s, ctx, args)
	r := s.envelope(o)
	level := slog.LevelDebug
	if j.mutating {
		level = slog.LevelInfo
	}
	if o.code != CodeOK {
		level = slog.LevelWarn
	}
	s.log().Log(ctx, level, "confd job", "job", j.name, "jobid", r["result_jobid"], "code", o.code, "desc", r["result_desc"])
	return r, nil
}
