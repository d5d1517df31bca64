package tunnel

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"net"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"backupsync/internal/farend"
)

// TestHelloBothVersions: the plain hello is answered with the two-field
// reply an older client's ssh.Unmarshal expects; the hello listing
// features is answered with the far end offered, unless the server has it
// off; the client reads either.
func TestHelloBothVersions(t *testing.T) {
	target := closedTarget(t)
	p := newPair(t)
	for _, off := range []bool{false, true} {
		srv := startServer(t, listenOn(t, ipServer), p.server, target, func(c *ServerConfig) { c.NoFarEnd = off })
		sc, err := ssh.Dial("tcp", srv.Addr, &ssh.ClientConfig{User: DefaultUser, Auth: []ssh.AuthMethod{ssh.PublicKeys(mustSigner(t, p.client))},
			HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ok, payload, err := sc.SendRequest(helloRequest, true, ssh.Marshal(helloMsg{Connection: "C1"}))
		var old helloReply
		if !ok || err != nil || ssh.Unmarshal(payload, &old) != nil || old.Connection != "C1" || old.Node != "n0021" {
			t.Fatalf("plain hello: %v %v %+v", ok, err, old)
		}
		ok, payload, err = sc.SendRequest(helloRequest, true, ssh.Marshal(helloMsgV2{Connection: "C1", Features: []string{"other", FeatureFarEnd}}))
		if !ok || err != nil {
			t.Fatalf("hello with features: %v %v", ok, err)
		}
		var r2 helloReplyV2
		if err := ssh.Unmarshal(payload, &r2); err != nil || r2.Connection != "C1" {
			t.Fatalf("hello with features: %v %+v", err, r2)
		}
		if got := slices.Contains(r2.Features, FeatureFarEnd); got == off || slices.Contains(r2.Features, "other") {
			t.Fatalf("NoFarEnd=%v: features %q", off, r2.Features)
		}
		for _, pl := range [][]byte{ssh.Marshal(old), payload} {
			if r, err := parseHelloReply(pl); err != nil || r.Connection != "C1" {
				t.Fatalf("parseHelloReply: %v %+v", err, r)
			}
		}
		sc.Close()

		c, _ := newClient(t, p.client, []string{srv.Addr}, nil)
		offered, err := c.FarEnd(context.Background())
		if err != nil || offered == off {
			t.Fatalf("NoFarEnd=%v: FarEnd = %v, %v", off, offered, err)
		}
		if off {
			if _, err := c.OpenFarEnd(context.Background()); !errors.Is(err, ErrFarEndNotOffered) {
				t.Fatalf("OpenFarEnd without the offer: %v", err)
			}
		}
		c.Close()
		srv.Close()
	}
}

// TestHelloWithAnOlderServer: a server that knows only the plain hello
// refuses the one listing features (its ssh.Unmarshal fails on the longer
// payload); the client then sends the plain hello and goes on without the
// far end; a server that answers no hello (OpenSSH) gives no features.
func TestHelloWithAnOlderServer(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	signer, _ := ssh.NewSignerFromKey(key)
	for _, knowsHello := range []bool{true, false} {
		ln := listenOn(t, ipServer)
		var asked atomic.Int32
		done := make(chan struct{})
		go func() {
			defer close(done)
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			defer nc.Close()
			cfg := &ssh.ServerConfig{NoClientAuth: true}
			cfg.AddHostKey(signer)
			_, chans, reqs, err := ssh.NewServerConn(nc, cfg)
			if err != nil {
				return
			}
			go func() {
				for nch := range chans {
					nch.Reject(ssh.Prohibited, "no")
				}
			}()
			for req := range reqs {
				if req.Type != helloRequest {
					req.Reply(false, nil)
					continue
				}
				asked.Add(1)
				var m helloMsg
				if !knowsHello || ssh.Unmarshal(req.Payload, &m) != nil {
					req.Reply(false, nil)
					continue
				}
				req.Reply(true, ssh.Marshal(helloReply{Connection: m.Connection, Node: "old-node"}))
			}
		}()
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		sc, chans, reqs, err := ssh.NewClientConn(nc, ln.Addr().String(), &ssh.ClientConfig{User: "x", HostKeyCallback: ssh.InsecureIgnoreHostKey()})
		if err != nil {
			t.Fatal(err)
		}
		client := ssh.NewClient(sc, chans, reqs)
		node, features, err := sayHello(client, "C1", ln.Addr().String(), 5*time.Second)
		if err != nil || len(features) != 0 || asked.Load() != 2 {
			t.Fatalf("knowsHello=%v: node %q features %q err %v after %d hellos", knowsHello, node, features, err, asked.Load())
		}
		if knowsHello != (node == "old-node") {
			t.Fatalf("knowsHello=%v: node %q", knowsHello, node)
		}
		client.Close()
		ln.Close()
		<-done
	}
}

// TestFarEndChannelFlood: a paired peer opening far-end channels without
// end gets MaxChannels of them (each waiting for its login), the others
// refused at once and counted against the forward caps; another SSH
// connection is still served; closing the channels frees the caps.
func TestFarEndChannelFlood(t *testing.T) {
	target := closedTarget(t)
	p := newPair(t)
	srv := startServer(t, listenOn(t, ipServer), p.server, target, func(c *ServerConfig) {
		c.FarEnd.MaxChannels = 6
		c.FarEnd.IdleTimeout = time.Minute
	})
	c, _ := newClient(t, p.client, []string{srv.Addr}, nil)
	ctx := context.Background()
	var open []interface{ Close() error }
	refused := 0
	for range 40 {
		ch, err := c.OpenFarEnd(ctx)
		if err != nil {
			if !strings.Contains(err.Error(), "too many far-end channels") {
				t.Fatalf("refusal: %v", err)
			}
			refused++
			continue
		}
		open = append(open, ch)
	}
	if len(open) != 6 || refused != 34 {
		t.Fatalf("%d channels open, %d refused", len(open), refused)
	}
	if h := srv.Health(); h.Forwards != 6 {
		t.Fatalf("forwards counted: %d", h.Forwards)
	}
	srv.Log.waitFor(t, 5*time.Second, "refused far-end channel")

	other, _ := newClient(t, p.client, []string{srv.Addr}, nil)
	ch, err := other.OpenFarEnd(ctx)
	if err != nil {
		t.Fatalf("another SSH connection during the flood: %v", err)
	}
	ch.Close()
	for _, ch := range open {
		ch.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for srv.Health().Forwards != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("forwards still counted after the close: %d", srv.Health().Forwards)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := c.OpenFarEnd(ctx); err != nil {
		t.Fatalf("after the flood: %v", err)
	}
}

// feFrame is a far-end frame by hand (farend's wire format): type, id,
// length, payload.
func feFrame(typ byte, id uint32, payload []byte) []byte {
	b := []byte{typ}
	b = binary.BigEndian.AppendUint32(b, id)
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	return append(b, payload...)
}

// feResult reads frames until the result of id and returns its kind (0 is
// success).
func feResult(t *testing.T, r io.Reader, id uint32) uint32 {
	t.Helper()
	for {
		var h [9]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			t.Fatalf("result of %d: %v", id, err)
		}
		p := make([]byte, binary.BigEndian.Uint32(h[5:]))
		if _, err := io.ReadFull(r, p); err != nil {
			t.Fatal(err)
		}
		if h[0] == 10 && binary.BigEndian.Uint32(h[1:5]) == id {
			return binary.BigEndian.Uint32(p[:4])
		}
	}
}

// TestFarEndHostilePairedPeer: a paired client on the far-end path asks
// for paths outside the backup tree and sends a size that lies: refused
// or failed, nothing written outside the backup tree nor under a final
// name; an honest client is served meanwhile.
func TestFarEndHostilePairedPeer(t *testing.T) {
	ftpSrv := startFTP(t, ipFTP)
	p := newPair(t)
	srv := startServer(t, listenOn(t, ipServer), p.server, ftpSrv.Addr(), nil)
	c, _ := newClient(t, p.client, []string{srv.Addr}, nil)
	ch, err := c.OpenFarEnd(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Close()
	type login struct {
		Version              uint32
		User, Password, Root string
	}
	type publish struct {
		Path       string
		Size, From uint64
		MD5        []byte
		Stripes    uint32
		Token      []byte
	}
	type end struct {
		OK  bool
		CRC uint32
	}
	send := func(b []byte) {
		if _, err := ch.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	send(feFrame(1, 0, ssh.Marshal(login{1, ftpSrv.User, ftpSrv.Password, "/" + ftpSrv.Volume})))
	if k := feResult(t, ch, 0); k != 0 {
		t.Fatalf("login: kind %d", k)
	}
	for i, path := range []string{"../../etc/x", "/" + ftpSrv.Volume + "/x", "outside", "DB/id_1/x", "DB/id_1/level_0/node_0/../../../../x"} {
		id := uint32(i + 1)
		send(feFrame(3, id, ssh.Marshal(publish{Path: path, Size: 2})))
		send(feFrame(4, id, []byte("ab")))
		send(feFrame(5, id, ssh.Marshal(end{OK: true, CRC: crc32.Checksum([]byte("ab"), crc32.MakeTable(crc32.Castagnoli))})))
		if k := feResult(t, ch, id); k == 0 {
			t.Fatalf("publish %q accepted", path)
		}
	}
	// A size that lies: 10 announced, 3 sent.
	send(feFrame(3, 20, ssh.Marshal(publish{Path: "DB/id_1/level_0/node_0/lie", Size: 10})))
	send(feFrame(4, 20, []byte("abc")))
	send(feFrame(5, 20, ssh.Marshal(end{OK: true, CRC: crc32.Checksum([]byte("abc"), crc32.MakeTable(crc32.Castagnoli))})))
	if k := feResult(t, ch, 20); k == 0 {
		t.Fatal("a lying publish succeeded")
	}

	// An honest client meanwhile.
	fe, err := farend.Dial(context.Background(), c.OpenFarEnd, farend.Login{User: ftpSrv.User, Password: ftpSrv.Password, Root: "/" + ftpSrv.Volume}, farend.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer fe.Close()
	if err := fe.Publish(context.Background(), "DB/id_1/level_0/node_0/good", strings.NewReader("good"), 4, 0); err != nil {
		t.Fatal(err)
	}
	var files []string
	filepath.WalkDir(ftpSrv.Dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(filepath.Join(ftpSrv.Dir, ftpSrv.Volume), p)
			files = append(files, rel)
		}
		return nil
	})
	if len(files) != 1 || files[0] != "DB/id_1/level_0/node_0/good" {
		t.Fatalf("files in the FTP root: %q", files)
	}
}

// TestFarEndNoGoroutineLeak: far-end publishes (small and striped), then
// the far-end client, the tunnel client and the server closed: every
// goroutine of theirs ends.
func TestFarEndNoGoroutineLeak(t *testing.T) {
	ftpSrv := startFTP(t, ipFTP)
	p := newPair(t)
	runtime.GC()
	before := runtime.NumGoroutine()
	for range 3 {
		ln := listenOn(t, ipServer)
		s, err := NewServer(ServerConfig{Keys: p.server, ArchiveFTP: ftpSrv.Addr()})
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- s.Serve(context.Background(), ln) }()
		c, err := NewClient(ClientConfig{Connection: "C1", Nodes: []string{ln.Addr().String()}, Keys: p.client})
		if err != nil {
			t.Fatal(err)
		}
		fe, err := farend.Dial(context.Background(), c.OpenFarEnd, farend.Login{User: ftpSrv.User, Password: ftpSrv.Password, Root: "/" + ftpSrv.Volume},
			farend.Options{Channels: 4, StripeMin: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		for i, n := range []int{100, 3 << 20} {
			data := randomData(t, n)
			if err := fe.Publish(context.Background(), fmt.Sprintf("DB/id_1/level_0/node_0/f%d", i), bytes.NewReader(data), int64(n), 0); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := fe.ListNode(context.Background(), "DB", 0); err != nil {
			t.Fatal(err)
		}
		fe.Close()
		c.Close()
		s.Close()
		if err := <-served; err != nil {
			t.Fatal(err)
		}
	}
	waitGoroutines(t, before, "far-end publishes and every close")
}
