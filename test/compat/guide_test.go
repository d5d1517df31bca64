package compat

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"backupsync/internal/clustertest"
	"backupsync/internal/ftptest"
	"backupsync/internal/tunnel"
)

// TestGuideFlowAsWritten runs the guide's steps 4 and 7-10 in Python 3 as
// written (guide_flow.py) against a 2-node client cluster (EDU01) and a
// 2-node server cluster (EDU02), each node with its own vsftpd archive
// volume: the server is never activated and no host key goes to the
// client. The pair must sync md5-identical (the client pins the server's
// host keys on first use). Then both server nodes get new host keys: the
// client refuses them, naming the pinned and the presented fingerprint.
// Addresses 127.0.8.51-52 (EDU01) and 127.0.8.61-62 (EDU02).
func TestGuideFlowAsWritten(t *testing.T) {
	clustertest.Python(t)
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("vsftpd tests need root (CI=true)")
		}
		t.Skip("vsftpd tests need root")
	}
	srcIPs, dstIPs := []string{"127.0.8.51", "127.0.8.52"}, []string{"127.0.8.61", "127.0.8.62"}
	srcPort, dstPort := clustertest.CommonFreePort(t, srcIPs...), clustertest.CommonFreePort(t, dstIPs...)
	var srcFTP, dstFTP []*ftptest.Server
	for i := range 2 {
		srcFTP = append(srcFTP, ftptest.StartPort(t, ftptest.KindVsftpd, srcIPs[i], srcPort))
		dstFTP = append(dstFTP, ftptest.StartPort(t, ftptest.KindVsftpd, dstIPs[i], dstPort))
	}
	vol := func(s *ftptest.Server) string { return filepath.Join(s.Dir, s.Volume) }
	for i, s := range srcFTP {
		writeSets(t, vol(s), i)
	}
	sshPort := clustertest.CommonFreePort(t, dstIPs...)
	edu01 := clustertest.Start(t, "n005", srcIPs, clustertest.Options{FTPPorts: []int{srcPort, srcPort}, RemoteSSHPort: sshPort})
	edu02 := clustertest.Start(t, "n006", dstIPs, clustertest.Options{FTPPorts: []int{dstPort, dstPort}, SSHPort: sshPort})

	work := t.TempDir()
	// The guide's client.cfg with this site's values; a short cycle so that
	// the test need not wait for */2.
	client := fmt.Sprintf("Connection1\n{\nDATABASE_NAME = DB\nSTART_CYCLE = @every 2s\nLOCAL_URL = ftp://%s:%s@%%s/%s\nREMOTE_URL = ftp://%s:%s@%%s:%d/%s\nREMOTE_NODES = %s; %s\nVerbose = true\nSSH = client\nSETTLE_TIME = 1s\n}\n",
		srcFTP[0].User, srcFTP[0].Password, srcFTP[0].Volume, dstFTP[0].User, dstFTP[0].Password, dstPort, dstFTP[0].Volume, dstIPs[0], dstIPs[1])
	clientCfg, serverCfg := filepath.Join(work, "client.cfg"), filepath.Join(work, "server.cfg")
	os.WriteFile(clientCfg, []byte(client), 0o600)
	os.WriteFile(serverCfg, []byte("Connection1\n{\nVerbose = true\nSSH = server\n}\n"), 0o600)

	out := clustertest.RunScript(t, "guide_flow.py", edu01.URL(), edu02.URL(), clientCfg, serverCfg, work)
	if !strings.Contains(out, "guide flow: OK") {
		t.Fatal("the guide's flow did not finish")
	}

	// The first cycles pin the server's host keys and copy everything.
	for node := range 2 {
		waitFor(t, 90*time.Second, fmt.Sprintf("node_%d md5-identical", node), func() bool {
			want, got := clustertest.NodeSums(vol(srcFTP[node]), "DB", node), clustertest.NodeSums(vol(dstFTP[node]), "DB", node)
			return len(want) == 6 && fmt.Sprint(want) == fmt.Sprint(got)
		}, edu01.Nodes[node])
	}
	// Per node: address → fingerprint pinned. Each client node pinned the
	// server node it reached first (its own index in REMOTE_NODES).
	pinned := map[*clustertest.Node]map[string]string{}
	for _, n := range edu01.Nodes {
		pinned[n] = map[string]string{}
		ks, err := tunnel.NewKeyStore(filepath.Join(n.Dir, "state"), n.Name)
		if err != nil {
			t.Fatal(err)
		}
		pins, err := ks.PinnedHostKeys("Connection1")
		if err != nil || len(pins) == 0 {
			t.Fatalf("%s pinned nothing: %v", n.Name, err)
		}
		for _, p := range pins {
			if !p.IsAddress() {
				t.Errorf("%s: a pin of node %s, not of an address", n.Name, p.Node)
			}
			pinned[n][p.Node] = p.Fingerprint()
		}
	}
	log := func(n *clustertest.Node) string {
		b, _ := os.ReadFile(filepath.Join(n.Dir, "state", "log", "plugin.log"))
		return string(b)
	}
	if !strings.Contains(log(edu01.Nodes[0]), "on first use") {
		t.Error("the first-use pin is not in the plugin log")
	}
	for _, n := range append(edu01.Nodes, edu02.Nodes...) {
		n.CheckNoSecrets(t, srcFTP[0].Password, dstFTP[0].Password)
	}

	// Both server nodes come back with new host keys.
	presented := map[string]string{}
	for _, n := range edu02.Nodes {
		n.Stop()
		if err := os.Remove(filepath.Join(n.Dir, "state", "ssh", "host", "ssh_host_ed25519_key")); err != nil {
			t.Fatal(err)
		}
		n.Start(t)
		ks, _ := tunnel.NewKeyStore(filepath.Join(n.Dir, "state"), n.Name)
		waitFor(t, 30*time.Second, n.Name+"'s new host key", func() bool {
			_, err := os.Stat(filepath.Join(n.Dir, "state", "ssh", "host", "ssh_host_ed25519_key"))
			return err == nil
		}, n)
		hk, err := ks.HostKey("")
		if err != nil {
			t.Fatal(err)
		}
		presented[fmt.Sprintf("%s:%d", n.IP, sshPort)] = tunnel.KeyLine{Key: hk.PublicKey()}.Fingerprint()
	}
	// The client nodes refuse them: each one's log (GETLOG) names both
	// fingerprints of each address it pinned, and the next step.
	for src, pins := range pinned {
		for addr, oldFP := range pins {
			newFP := presented[addr]
			if newFP == "" || oldFP == newFP {
				t.Fatalf("%s: pinned %q, presented %q", addr, oldFP, newFP)
			}
			waitFor(t, 60*time.Second, src.Name+" refusing "+addr, func() bool {
				for _, line := range strings.Split(log(src), "\n") {
					if strings.Contains(line, "presents host key "+newFP) && strings.Contains(line, "host key "+oldFP+" is pinned") &&
						strings.Contains(line, "UPLOAD_KEY") {
						return true
					}
				}
				return false
			}, src)
		}
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool, n *clustertest.Node) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(n.Dir, "state", "log", "plugin.log"))
			t.Fatalf("%s: not within %v\n%s's log:\n%s", what, timeout, n.Name, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// writeSets writes two backup sets for database node index node under dir.
func writeSets(t *testing.T, dir string, node int) {
	t.Helper()
	for _, set := range []string{"id_1/level_0", "id_2/level_1"} {
		for i, size := range []int{300 << 10, 1 << 20, 10} {
			name := fmt.Sprintf("data_%d", i)
			if i == 2 {
				name = "metadata"
			}
			p := filepath.Join(dir, "DB", set, fmt.Sprintf("node_%d", node), name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			data := make([]byte, size)
			for j := range data {
				data[j] = byte(j*31 + node + i)
			}
			if err := os.WriteFile(p, data, 0o644); err != nil {
				t.Fatal(err)
			}
			old := time.Now().Add(-time.Hour)
			os.Chtimes(p, old, old)
		}
	}
}
