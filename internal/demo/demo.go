// Package demo runs two small Exasol-like clusters on loopback addresses
// that sync their backups through backupsync, in one process: the
// README's first command. The source cluster's daemons copy through SSH
// tunnels to the destination cluster's daemons, paired with the real plugin
// verbs, over embedded FTP servers serving generated backup trees. After the
// first cycle it prints the backup list (as backupsyncctl backups), then one
// line per scheduled cycle and source node as the cycle ends, with the
// node's health, while new sets arrive (a level 0 every few) and the oldest
// sets that no kept set builds on expire, so that the list stays usable.
package demo

import (
	"context"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	gosync "sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"golang.org/x/crypto/bcrypt"

	"backupsync/internal/config"
	"backupsync/internal/ctl"
	"backupsync/internal/daemon"
	"backupsync/internal/display"
	"backupsync/internal/freeport"
	"backupsync/internal/ftpserver"
	"backupsync/internal/health"
	"backupsync/internal/sync"
)

// Options tune the demo.
type Options struct {
	Out io.Writer
	// Once stops after the first cycle instead of running until ctx ends.
	Once bool
	// Cycle is the schedule of the running phase; default "@every 1m".
	Cycle string
	// Arrival is how often a new backup set arrives on the source (and
	// the oldest that no kept set needs expires); default a minute.
	Arrival time.Duration
	// Cycles, when positive, stops the running phase once that many
	// scheduled cycles have ended on every source node, and prints the
	// backup sets then.
	Cycles int
}

const (
	database   = "DEMO_DB"
	connection = "Connection1"
	admin      = "admin"
)

// node is one node of a demo cluster: its daemon and its archive FTP.
type node struct {
	name, ip    string
	index       int
	dir, volume string
	ftp         *ftpserver.Server
	controlPort int
	d           *daemon.Daemon
}

func (n *node) volumeDir() string { return filepath.Join(n.dir, "archive", n.volume) }

// Run runs the demo until ctx ends (or after the first cycle with Once),
// then stops every daemon and server and removes its files.
func Run(ctx context.Context, opt Options) error {
	out := &lockedWriter{w: opt.Out} // cycles and arrivals print at once
	if opt.Cycle == "" {
		opt.Cycle = "@every 1m"
	}
	if opt.Arrival <= 0 {
		opt.Arrival = time.Minute
	}
	root, err := os.MkdirTemp("", "backupsync-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	adminPW, ftpPW := secret(), secret()

	src := []*node{{name: "n0011", ip: "127.0.41.1", index: 0, volume: "v0003"}, {name: "n0012", ip: "127.0.41.2", index: 1, volume: "v0003"}}
	dst := []*node{{name: "n0021", ip: "127.0.42.1", index: 0, volume: "v0002"}, {name: "n0022", ip: "127.0.42.2", index: 1, volume: "v0002"}}
	// A cluster's archive FTP listens on one port on every node, as
	// Exasol's does, so that one URL serves them all.
	for _, cl := range [][]*node{src, dst} {
		ftpPort, err := freeport.Common(cl[0].ip, cl[1].ip)
		if err != nil {
			return fmt.Errorf("demo needs the loopback addresses 127.0.41.x and 127.0.42.x: %w", err)
		}
		for _, n := range cl {
			n.dir = filepath.Join(root, n.name)
			if err := os.MkdirAll(n.volumeDir(), 0o700); err != nil {
				return err
			}
			if n.ftp, err = ftpserver.Start(ftpserver.Options{Dir: filepath.Join(n.dir, "archive"), Host: n.ip, Port: ftpPort, User: "ftpuser", Password: ftpPW}); err != nil {
				return fmt.Errorf("demo FTP server on %s: %w", n.ip, err)
			}
			defer n.ftp.Stop()
		}
	}
	for i, n := range src {
		for id := 1; id <= 3; id++ {
			if err := writeSet(n.volumeDir(), id, i); err != nil {
				return err
			}
		}
	}
	fmt.Fprintf(out, "backupsync demo: two clusters on loopback, files in %s\n", root)
	fmt.Fprintf(out, "  source      %s, %s: archive volume v0003 with %s in 3 backup sets per node\n", src[0].ip, src[1].ip, database)
	fmt.Fprintf(out, "  destination %s, %s: archive volume v0002, empty\n", dst[0].ip, dst[1].ip)

	// The daemons.
	hash, err := bcrypt.GenerateFromPassword([]byte(adminPW), bcrypt.MinCost)
	if err != nil {
		return err
	}
	sshPort, err := freeport.Common(dst[0].ip, dst[1].ip)
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(context.Background())
	var running gosync.WaitGroup
	defer func() {
		stop()
		running.Wait()
	}()
	for _, cl := range [][]*node{src, dst} {
		for _, n := range cl {
			if n.controlPort, err = freeport.Common(n.ip); err != nil {
				return err
			}
		}
		for _, n := range cl {
			s, err := config.ParseSettings(filepath.Join(n.dir, "backupsyncd.hcl"), settings(n, cl, string(hash), adminPW, sshPort))
			if err != nil {
				return fmt.Errorf("demo settings: %w", err)
			}
			if n.d, err = daemon.New(s, daemon.Options{}); err != nil {
				return err
			}
			running.Add(1)
			go func(d *daemon.Daemon) {
				defer running.Done()
				d.Run(runCtx, 10*time.Second)
			}(n.d)
		}
	}

	// Pairing, as an admin would: backupsyncctl pair.
	clientCfg := fmt.Sprintf("%s\n{\nDATABASE_NAME = %s\nSTART_CYCLE = %s\nLOCAL_URL = ftp://ftpuser:%s@%%s:%s/v0003\nREMOTE_URL = ftp://ftpuser:%s@%%s:%s/v0002\nREMOTE_NODES = %s; %s\nSSH = client\nSETTLE_TIME = 30s\nVerbose = true\n}\n",
		connection, database, opt.Cycle, ftpPW, port(src[0].ftp.Addr), ftpPW, port(dst[0].ftp.Addr), dst[0].ip, dst[1].ip)
	serverCfg := connection + "\n{\nSSH = server\nVerbose = true\n}\n"
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	source, err := ctl.Dial(ctl.Options{URL: controlURL(src[0], adminPW), Insecure: true})
	if err != nil {
		return err
	}
	dest, err := ctl.Dial(ctl.Options{URL: controlURL(dst[0], adminPW), Insecure: true})
	if err != nil {
		return err
	}
	steps, err := ctl.Pair(pctx, ctl.PairSpec{Source: source, Dest: dest, Connection: connection,
		SourceConfig: ctl.File{Name: "client.cfg", Data: []byte(clientCfg)}, DestConfig: ctl.File{Name: "server.cfg", Data: []byte(serverCfg)}})
	if err != nil {
		return fmt.Errorf("pairing: %w", err)
	}
	fmt.Fprintf(out, "paired %s with backupsyncctl pair (%d steps: install, configs, SSH keys both ways, activate)\n\n", connection, len(steps))

	// The first cycle, with a live progress line.
	if err := firstCycle(ctx, out, src, dst); err != nil {
		return err
	}
	if err := printBackups(ctx, out, source); err != nil {
		return err
	}

	fmt.Fprintf(out, "\nThe daemons keep running (%s; a new backup set arrives every %s, a level 0 every %d sets,\n"+
		"and the oldest sets that no kept set builds on expire). Each cycle's result is printed as it ends.\nTry, in another terminal:\n\n",
		opt.Cycle, display.Duration(opt.Arrival), fullEvery)
	ctlCmd := fmt.Sprintf("go run ./cmd/backupsyncctl --insecure --url %s", controlURL(src[0], adminPW))
	for _, c := range []string{"nodes", "status", "status " + connection, "backups " + database, "getlog --lines 20"} {
		fmt.Fprintf(out, "  %s %s\n", ctlCmd, c)
	}
	fmt.Fprintf(out, "  go run ./cmd/backupsyncctl --insecure --url %s status %s\n", controlURL(dst[0], adminPW), connection)
	fmt.Fprintf(out, "\nCtrl-C stops the demo and removes its files.\n\n")
	if opt.Once {
		return nil
	}
	rctx, done := context.WithCancel(ctx)
	defer done()
	var watching gosync.WaitGroup
	watching.Go(func() { watchCycles(rctx, out, src, opt.Cycles, done) })
	err = keepArriving(rctx, out, src, opt.Arrival)
	watching.Wait()
	if err != nil || opt.Cycles <= 0 || ctx.Err() != nil {
		return err
	}
	return printBackups(ctx, out, source)
}

// printBackups prints the source's backup sets with each node's part at
// the destination, as backupsyncctl backups does.
func printBackups(ctx context.Context, out io.Writer, source *ctl.Cluster) error {
	b, err := source.Backups(ctx, database)
	if err != nil {
		return fmt.Errorf("backup list: %s", ctl.Explain(err))
	}
	fmt.Fprintf(out, "\nbackup sets of %s (backupsyncctl backups %s):\n", database, database)
	return ctl.WriteBackupTable(out, b)
}

// watchCycles prints a line for every cycle that ends on a source node,
// with the node's health, as it ends (the health's last cycle is looked at
// five times a second). With cycles > 0 it calls stop once that many
// cycles have ended on every node.
func watchCycles(ctx context.Context, out io.Writer, src []*node, cycles int, stop func()) {
	seen := make([]time.Time, len(src))
	counts := make([]int, len(src))
	for i, n := range src {
		for _, h := range n.d.Health(time.Now()) {
			seen[i] = h.LastCycle // the first cycle was printed already
		}
	}
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		all := true
		for i, n := range src {
			for _, h := range n.d.Health(time.Now()) {
				if h.Connection != connection || !h.LastCycle.After(seen[i]) {
					continue
				}
				seen[i] = h.LastCycle
				counts[i]++
				// The ended cycle's verdict: the next one may run already.
				verdict := string(health.OK)
				if h.Failing {
					verdict = string(health.Failing)
				}
				if h.LagKnown {
					verdict += ", lag " + display.Duration(h.Lag)
				}
				if h.Failing {
					verdict += ": " + h.Cause + "; next: " + h.Next
				}
				summary := h.LastSummary
				if _, rest, ok := strings.Cut(summary, ": "); ok && strings.HasPrefix(summary, connection+" ") {
					summary = rest // "Connection1 node_0: " is said before
				}
				fmt.Fprintf(out, "%s  cycle of %s on %s (node_%d): %s | %s\n", display.Time(h.LastCycle), connection, n.name, n.index, verdict, summary)
			}
			all = all && counts[i] >= cycles
		}
		if cycles > 0 && all {
			stop()
			return
		}
	}
}

// firstCycle runs every source node's cycle now and prints progress and a
// summary table.
func firstCycle(ctx context.Context, out io.Writer, src, dst []*node) error {
	var files, bytes atomic.Int64
	start := time.Now()
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				secs := time.Since(start).Seconds()
				fmt.Fprintf(out, "\rfirst cycle: %d files, %.1f MiB, %.1f MiB/s   ", files.Load(), float64(bytes.Load())/(1<<20), float64(bytes.Load())/(1<<20)/secs)
			}
		}
	}()
	reports := make([]sync.Report, len(src))
	errs := make([]error, len(src))
	var wg gosync.WaitGroup
	for i, n := range src {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				reports[i], errs[i] = n.d.RunOnce(ctx, connection, func(e sync.Event) {
					if e.Err == nil {
						files.Add(1)
						bytes.Add(e.Bytes)
					}
				})
				// The schedule may have begun a cycle since the pairing
				// activated the connection: this one follows it.
				if !errors.Is(errs[i], daemon.ErrCycleRunning) {
					break
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(50 * time.Millisecond):
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	<-stopped
	secs := time.Since(start).Seconds()
	fmt.Fprintf(out, "\rfirst cycle: %d files, %.1f MiB, %.1f MiB/s in %.1fs\n\n", files.Load(), float64(bytes.Load())/(1<<20), float64(bytes.Load())/(1<<20)/secs, secs)

	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tPART\tCOPIED\tBYTES\tFAILED\tDESTINATION")
	var failed error
	for i, n := range src {
		r := reports[i]
		// Database node i's tunnel lands on REMOTE_NODES[i].
		same := identical(n.volumeDir(), dst[i].volumeDir(), i)
		verdict := "md5-identical"
		if !same {
			verdict = "DIFFERS"
			failed = fmt.Errorf("node_%d differs at the destination", i)
		}
		if errs[i] != nil {
			verdict, failed = errs[i].Error(), errs[i]
		}
		fmt.Fprintf(tw, "%s\tnode_%d\t%d\t%.1f MiB\t%d\t%s\n", n.name, i, r.Copied+r.Resumed+r.Replaced, float64(r.Bytes)/(1<<20), len(r.Failed), verdict)
	}
	tw.Flush()
	return failed
}

// keepArriving adds a backup set to every source node every arrival and
// expires the sets that expired returns, until ctx ends.
func keepArriving(ctx context.Context, out io.Writer, src []*node, arrival time.Duration) error {
	t := time.NewTicker(arrival)
	defer t.Stop()
	present := []int{1, 2, 3}
	for id := 4; ; id++ {
		select {
		case <-ctx.Done():
			fmt.Fprintln(out, "\nstopping: daemons drain their cycles, servers stop, files are removed")
			return nil
		case <-t.C:
			present = append(present, id)
			gone := expired(present)
			for i, n := range src {
				if err := writeSet(n.volumeDir(), id, i); err != nil {
					return err
				}
				for _, old := range gone {
					if err := os.RemoveAll(filepath.Join(n.volumeDir(), database, fmt.Sprintf("id_%d", old))); err != nil {
						return fmt.Errorf("expire id_%d: %w", old, err)
					}
				}
			}
			present = slices.DeleteFunc(present, func(x int) bool { return slices.Contains(gone, x) })
			line := fmt.Sprintf("%s  new backup set id_%d (level %d) on the source", display.Time(time.Now()), id, levelOf(id))
			if len(gone) > 0 {
				line += "; expired: " + ids(gone)
			}
			fmt.Fprintln(out, line)
		}
	}
}

// fullEvery: every fullEvery-th set is a full backup (level 0), the others
// incrementals (level 1) on the last full one.
const fullEvery = 4

// levelOf is the level of backup set id: 0 for ids 1, 5, 9, …
func levelOf(id int) int {
	if (id-1)%fullEvery == 0 {
		return 0
	}
	return 1
}

// keepSets is how many of the newest sets the demo keeps.
const keepSets = 3

// expired returns the sets of present (ascending ids) that expire: all but
// the keepSets newest and the level-0 sets those build on, so that every
// kept set stays usable (a level 1 needs the level 0 before it).
func expired(present []int) []int {
	keep := map[int]bool{}
	for i := max(len(present)-keepSets, 0); i < len(present); i++ {
		id := present[i]
		keep[id] = true
		for j := i; j >= 0; j-- { // the full backup it builds on
			if levelOf(present[j]) == 0 {
				keep[present[j]] = true
				break
			}
		}
	}
	var out []int
	for _, id := range present {
		if !keep[id] {
			out = append(out, id)
		}
	}
	return out
}

func ids(list []int) string {
	s := make([]string, len(list))
	for i, id := range list {
		s[i] = fmt.Sprintf("id_%d", id)
	}
	return strings.Join(s, ", ")
}

// writeSet writes backup set id (level levelOf(id)) for database node index
// part, modified an hour ago (stable).
func writeSet(volume string, id, part int) error {
	level, files := levelOf(id), 3
	if level == 0 {
		files = 6
	}
	dir := filepath.Join(volume, database, fmt.Sprintf("id_%d", id), fmt.Sprintf("level_%d", level), fmt.Sprintf("node_%d", part))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	rng := mrand.New(mrand.NewPCG(uint64(id), uint64(part)))
	old := time.Now().Add(-time.Hour)
	for f := 0; f <= files; f++ {
		name, size := fmt.Sprintf("backup_data_%02d", f), 256<<10+rng.IntN(768<<10)
		if f == files {
			name, size = "metadata", 4<<10
		}
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			return err
		}
		os.Chtimes(p, old, old)
	}
	return nil
}

// identical compares node part's files of two volumes by md5.
func identical(a, b string, part int) bool {
	sa, sb := sums(a, part), sums(b, part)
	if len(sa) == 0 || len(sa) != len(sb) {
		return false
	}
	for p, s := range sa {
		if sb[p] != s {
			return false
		}
	}
	return true
}

func sums(volume string, part int) map[string]string {
	out := map[string]string{}
	marker := string(filepath.Separator) + fmt.Sprintf("node_%d", part) + string(filepath.Separator)
	filepath.WalkDir(filepath.Join(volume, database), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.Contains(p, marker) {
			return nil
		}
		data, err := os.ReadFile(p)
		if err == nil {
			sum := md5.Sum(data)
			rel, _ := filepath.Rel(volume, p)
			out[rel] = hex.EncodeToString(sum[:])
		}
		return nil
	})
	return out
}

func settings(n *node, cluster []*node, hash, adminPW string, sshPort int) []byte {
	c := &config.Cluster{User: admin, Password: adminPW}
	for _, p := range cluster {
		c.Nodes = append(c.Nodes, config.ClusterNode{Name: p.name, URL: fmt.Sprintf("https://%s:%d/", p.ip, p.controlPort)})
	}
	ftpPort, _ := strconv.Atoi(port(n.ftp.Addr))
	s := config.Settings{
		Node:            config.Node{Name: n.name, IP: n.ip, Index: n.index},
		ConnectionsFile: "connections.cfg", StateDir: "state", FTPDefaultPort: ftpPort,
		XMLRPC:    &config.XMLRPC{Listen: net.JoinHostPort(n.ip, strconv.Itoa(n.controlPort)), Users: []config.User{{Name: admin, PasswordHash: hash}}},
		SSHServer: &config.SSHServer{Listen: net.JoinHostPort(n.ip, strconv.Itoa(sshPort))},
		SSHClient: &config.SSHClient{Port: sshPort},
		Cluster:   c,
	}
	return s.Marshal()
}

func controlURL(n *node, pw string) string {
	return fmt.Sprintf("https://%s:%s@%s:%d/cluster1/", admin, pw, n.ip, n.controlPort)
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func secret() string {
	b := make([]byte, 9)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// lockedWriter serializes the writes of the demo's goroutines.
type lockedWriter struct {
	mu gosync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
