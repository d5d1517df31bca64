package runner

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"backupsync/internal/config"
	"backupsync/internal/freeport"
	"backupsync/internal/ftptest"
	"backupsync/internal/sshtest"
	"backupsync/internal/tunnel"
)

// preflightRunner is a runner of Conn1 from src to dst with the given role;
// sshPort is the client's SSH port (SSH = client).
func preflightRunner(t *testing.T, src, dst *ftptest.Server, role string, keys *tunnel.KeyStore, sshPort int) *Runner {
	t.Helper()
	cfg := fmt.Sprintf("Conn1\n{\nDATABASE_NAME = DB\nSTART_CYCLE = @hourly\nLOCAL_URL = ftp://%s:%s@%%s:%d/%s\nREMOTE_URL = ftp://%s:%s@%%s:%d/%s\nREMOTE_NODES = %s\nSSH = %s\n}\n",
		src.User, src.Password, src.Port, src.Volume, dst.User, dst.Password, dst.Port, dst.Volume, dst.Host, role)
	conns, err := config.ParseConnections("t.cfg", []byte(cfg))
	if err != nil {
		t.Fatal(err)
	}
	s := &config.Settings{Node: config.Node{Name: "n0011", IP: src.Host}, StateDir: t.TempDir(), FTPDefaultPort: 2021}
	if sshPort != 0 {
		s.SSHClient = &config.SSHClient{Port: sshPort, User: "root"}
	}
	return &Runner{Settings: s, Conn: conns[0], Keys: keys, ConnectTimeout: 10 * time.Second}
}

func runTest(t *testing.T, r *Runner) TestReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep := r.Test(ctx)
	t.Logf("%s", rep)
	return rep
}

// steps maps each step's name to its status.
func steps(rep TestReport) map[string]string {
	m := map[string]string{}
	for _, s := range rep.Steps {
		m[s.Name] = s.Status
	}
	return m
}

func wantSteps(t *testing.T, rep TestReport, want map[string]string) {
	t.Helper()
	got := steps(rep)
	for name, status := range want {
		if got[name] != status {
			t.Errorf("step %s: %q, want %q", name, got[name], status)
		}
	}
	if len(got) != len(want) {
		t.Errorf("steps %v, want %v", got, want)
	}
}

// noProbeLeft fails when a probe file, or its temporary name, is left in
// the destination's database directory.
func noProbeLeft(t *testing.T, dst *ftptest.Server) {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(dst.Dir, dst.Volume, "DB"))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), probePrefix) {
			t.Errorf("probe file left behind: %s", e.Name())
		}
	}
}

func TestPreflightDirectVsftpd(t *testing.T) {
	src := ftptest.Start(t, "vsftpd", "127.0.2.31")
	dst := ftptest.Start(t, "vsftpd", "127.0.2.32")
	e := &env{t: t, src: src, dst: dst}
	e.set(1, 0, 2, 1000)

	r := preflightRunner(t, src, dst, "none", nil, 0)
	rep := runTest(t, r)
	wantSteps(t, rep, map[string]string{StepSourceLogin: "ok", StepSourceList: "ok", StepDestLogin: "ok",
		StepDestList: "ok", StepDestWrite: "ok", StepDestRemove: "ok"})
	if !rep.OK() || !strings.HasPrefix(rep.String(), "test of Conn1 on n0011: ok\n") {
		t.Errorf("report:\n%s", rep)
	}
	if !strings.Contains(rep.String(), "DB/id_*/level_*/node_0: 1 backup set(s), 3 file(s)") {
		t.Errorf("the source listing is not reported:\n%s", rep)
	}
	if strings.Contains(rep.String(), src.Password) {
		t.Error("the report shows a password")
	}
	noProbeLeft(t, dst)

	t.Run("wrong password", func(t *testing.T) {
		r := preflightRunner(t, src, dst, "none", nil, 0)
		r.Conn.RemoteURL.Password = "wrong-" + dst.Password
		rep := runTest(t, r)
		wantSteps(t, rep, map[string]string{StepSourceLogin: "ok", StepSourceList: "ok", StepDestLogin: "failed",
			StepDestList: "skipped", StepDestWrite: "skipped", StepDestRemove: "skipped"})
		s := rep.Steps[2]
		if !strings.Contains(s.Cause, "530") || !strings.Contains(s.Cause, "REMOTE_URL") || !strings.Contains(s.Next, "password in REMOTE_URL of Conn1") {
			t.Errorf("wrong password explained as %q; next %q", s.Cause, s.Next)
		}
		if rep.OK() || !strings.Contains(rep.String(), "FAILED at destination login") || strings.Contains(rep.String(), r.Conn.RemoteURL.Password) {
			t.Errorf("report:\n%s", rep)
		}
	})

	t.Run("destination not writable: the write fails and leaves nothing", func(t *testing.T) {
		// The sessions of this vsftpd run as an unprivileged user, who may
		// not write into the database directory.
		ro := ftptest.StartUnprivileged(t, "127.0.2.35")
		db := filepath.Join(ro.Dir, ro.Volume, "DB")
		if err := os.MkdirAll(db, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(db, 0o555); err != nil {
			t.Fatal(err)
		}
		rep := runTest(t, preflightRunner(t, src, ro, "none", nil, 0))
		wantSteps(t, rep, map[string]string{StepSourceLogin: "ok", StepSourceList: "ok", StepDestLogin: "ok",
			StepDestList: "ok", StepDestWrite: "failed", StepDestRemove: "skipped"})
		noProbeLeft(t, ro)
	})

	t.Run("source volume missing", func(t *testing.T) {
		r := preflightRunner(t, src, dst, "none", nil, 0)
		r.Conn.LocalURL.Path = "/no-such-volume"
		rep := runTest(t, r)
		if st := steps(rep); st[StepSourceLogin] != "failed" || st[StepSourceList] != "skipped" || st[StepDestRemove] != "ok" {
			t.Errorf("steps %v", st)
		}
		if !strings.Contains(rep.Steps[0].Next, "LOCAL_URL") {
			t.Errorf("next step %q does not name LOCAL_URL", rep.Steps[0].Next)
		}
	})
}

// TestPreflightThroughOpenSSH: the test of an SSH = client connection goes
// through the tunnel (OpenSSH's sshd here, limited to forwarding to the
// archive FTP); a wrong password behind the tunnel and a tunnel that cannot
// be opened each fail their own step.
func TestPreflightThroughOpenSSH(t *testing.T) {
	const srcIP, dstIP = "127.0.2.33", "127.0.2.34"
	src := ftptest.Start(t, "vsftpd", srcIP)
	dst := ftptest.Start(t, "vsftpd", dstIP)
	keys, err := tunnel.NewKeyStore(t.TempDir(), "n0011")
	if err != nil {
		t.Fatal(err)
	}
	line, err := keys.ClientKeyLine("Conn1", "")
	if err != nil {
		t.Fatal(err)
	}
	sshd := sshtest.Start(t, dstIP, fmt.Sprintf("restrict,port-forwarding,permitopen=%q %s\n", dstIP+":*", line), &strings.Builder{})
	hostKey := strings.Fields(sshd.HostPub)
	if _, err := keys.Upload([]byte(hostKey[0] + " " + hostKey[1] + " backupsync-host:Conn1@n0021\n")); err != nil {
		t.Fatal(err)
	}
	_, p, _ := net.SplitHostPort(sshd.Addr)
	port, _ := strconv.Atoi(p)

	rep := runTest(t, preflightRunner(t, src, dst, "client", keys, port))
	wantSteps(t, rep, map[string]string{StepSourceLogin: "ok", StepSourceList: "ok", StepTunnel: "ok", StepDestLogin: "ok",
		StepDestList: "ok", StepDestWrite: "ok", StepDestRemove: "ok"})
	if !strings.Contains(rep.String(), "through the tunnel") || !strings.Contains(rep.String(), "no far-end publishing there (OpenSSH") {
		t.Errorf("report:\n%s", rep)
	}
	noProbeLeft(t, dst)

	t.Run("wrong password behind the tunnel", func(t *testing.T) {
		r := preflightRunner(t, src, dst, "client", keys, port)
		r.Conn.RemoteURL.Password = "wrong"
		rep := runTest(t, r)
		wantSteps(t, rep, map[string]string{StepSourceLogin: "ok", StepSourceList: "ok", StepTunnel: "ok", StepDestLogin: "failed",
			StepDestList: "skipped", StepDestWrite: "skipped", StepDestRemove: "skipped"})
		for _, s := range rep.Steps {
			if s.Name == StepDestLogin && !strings.Contains(s.Cause, "530") {
				t.Errorf("cause %q lacks the server's 530", s.Cause)
			}
		}
	})

	t.Run("no SSH server", func(t *testing.T) {
		free, err := freeport.On(dstIP)
		if err != nil {
			t.Fatal(err)
		}
		rep := runTest(t, preflightRunner(t, src, dst, "client", keys, free))
		wantSteps(t, rep, map[string]string{StepSourceLogin: "ok", StepSourceList: "ok", StepTunnel: "failed",
			StepDestLogin: "skipped", StepDestList: "skipped", StepDestWrite: "skipped", StepDestRemove: "skipped"})
		if s := rep.Steps[2]; !strings.Contains(s.Next, "SSH = server") {
			t.Errorf("tunnel failure: next %q", s.Next)
		}
	})
}

func TestPreflightServerRole(t *testing.T) {
	conns, err := config.ParseConnections("t.cfg", []byte("Conn1\n{\nSSH = server\n}\n"))
	if err != nil {
		t.Fatal(err)
	}
	r := &Runner{Settings: &config.Settings{Node: config.Node{Name: "n0021"}}, Conn: conns[0]}
	rep := r.Test(context.Background())
	if rep.OK() || !strings.Contains(rep.String(), "run the test of Conn1 on the client cluster") {
		t.Errorf("server role:\n%s", rep)
	}
}

func TestProbeName(t *testing.T) {
	for _, tc := range []struct{ node, want string }{
		{"n0011", "backupsync-test-n0011-abc.tmp"},
		{"../x/y", "backupsync-test-.._x_y-abc.tmp"},
	} {
		got := ProbeName(tc.node, "abc")
		if got != tc.want || !IsProbe(got) || strings.Contains(got, "/") {
			t.Errorf("ProbeName(%q) = %q, want %q", tc.node, got, tc.want)
		}
	}
	for _, name := range []string{"id_1", "metadata", "backupsync-test-x", "x.tmp"} {
		if IsProbe(name) {
			t.Errorf("IsProbe(%q)", name)
		}
	}
}
