// Command linkemu runs an emulated long link (package linkemu) for scripts:
// bench/compare.sh puts one in front of the destination's SSH ports.
//
//	linkemu --rtt 50ms [--rate 1gbit] [--queue BYTES] [--log-level debug] \
//	        --forward 127.0.6.2:12022=127.0.6.2:2022 [--forward LISTEN=TARGET ...]
//
// Every --forward listens on LISTEN and relays to TARGET, both loopback
// "IP:port"; all of them share one link (one rate per direction). Once
// every address listens it prints one line on stdout: "ready rtt=50ms
// rate=1gbit bps=125000000 queue=BYTES LISTEN=TARGET..." (bps: the rate in
// bytes per second, 0 = unlimited; LISTEN with the port it got). It
// runs until SIGINT or SIGTERM, then closes every connection, prints what
// it relayed on stderr and exits 0. Exit 2: a usage error; 1: it could not
// listen.
//
// Build it with: go build -o DIR/ ./internal/linkemu/cmd/linkemu
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"backupsync/internal/linkemu"
)

type forwards []string

func (f *forwards) String() string     { return strings.Join(*f, ",") }
func (f *forwards) Set(s string) error { *f = append(*f, s); return nil }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the command: it relays until ctx ends and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("linkemu", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rtt := fs.Duration("rtt", 0, "round-trip time: each byte is delivered half of it later, each way (e.g. 50ms)")
	rateS := fs.String("rate", "0", "each direction's rate shared by all connections: 1gbit, 100mbit, 119MiB; 0 = unlimited")
	queue := fs.Int("queue", 0, "bytes one connection's direction may hold undelivered (0: rate x rtt/2 + 4 MiB, or 16 MiB when unlimited)")
	level := fs.String("log-level", "warn", "log level on stderr: debug, info, warn, error")
	var fw forwards
	fs.Var(&fw, "forward", "LISTEN=TARGET, both loopback IP:port (repeatable)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "linkemu: "+format+" (see linkemu -h)\n", a...)
		return 2
	}
	if fs.NArg() > 0 {
		return usage("unexpected argument %q", fs.Arg(0))
	}
	if len(fw) == 0 {
		return usage("no --forward LISTEN=TARGET given")
	}
	rate, err := linkemu.ParseRate(*rateS)
	if err != nil {
		return usage("--rate: %v", err)
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return usage("--log-level %q: %v", *level, err)
	}
	pairs := make([][2]string, 0, len(fw))
	for _, f := range fw {
		listen, target, ok := strings.Cut(f, "=")
		if !ok || listen == "" || target == "" {
			return usage("--forward %q: want LISTEN=TARGET, e.g. 127.0.6.2:12022=127.0.6.2:2022", f)
		}
		pairs = append(pairs, [2]string{listen, target})
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lv}))
	link, err := linkemu.New(linkemu.Config{RTT: *rtt, Rate: rate, Queue: *queue, Logger: log})
	if err != nil {
		return usage("%v", err)
	}
	defer link.Close()

	var addrs []string
	for _, p := range pairs {
		addr, err := link.Listen(p[0], p[1])
		if err != nil {
			fmt.Fprintf(stderr, "linkemu: %v\n", err)
			return 1
		}
		addrs = append(addrs, addr+"="+p[1])
	}
	cfg := link.Config()
	fmt.Fprintf(stdout, "ready rtt=%v rate=%s bps=%d queue=%d %s\n", *rtt, linkemu.FormatRate(rate), rate, cfg.Queue, strings.Join(addrs, " "))
	<-ctx.Done()
	if err := link.Close(); err != nil {
		fmt.Fprintf(stderr, "linkemu: %v\n", err)
	}
	st := link.Stats()
	fmt.Fprintf(stderr, "linkemu: stopped: %d connections (%d could not reach their target), %d bytes up, %d bytes down\n",
		st.Accepted, st.DialErrors, st.Up, st.Down)
	return 0
}
