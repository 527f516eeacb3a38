// Command sgbench is Stagegate's load generator and benchmark reporter. It
// is not part of the product: `make bench` (scripts/bench.sh) builds it,
// starts a gateway per store and runs it. Every loop it runs is bounded in
// count and in time, and it only talks to the addresses it is given
// (loopback in bench.sh).
//
//	sgbench throughput    -url U -secret S -token T [-events 50000 -clients 64 -items 1000]
//	sgbench latency       -url U -token T [-rate 1000 -duration 10s]
//	sgbench redis-compare -redis 127.0.0.1:6379 [-clients 64 -requests 200000]
//	sgbench report        -in results.jsonl [-gotest FILE] [-header FILE]
//	sgbench fsync         -dir DIR        (the disk's write + fdatasync latency)
//	sgbench serve         -config FILE -cpuprofile FILE   (the gateway in-process, profiled)
//	sgbench freeport      print a free loopback TCP port
//
// Each measuring subcommand prints its result as Markdown table rows and,
// with -out FILE, appends it as one JSON line that `report` turns into
// bench/RESULTS.md with ratios and targets.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usageText = `usage: sgbench <command> [flags]

commands:
  throughput     signed webhooks with N concurrent clients: accepted/s and applied/s
  latency        open-loop API events at a fixed rate with ?wait: event -> move latency
  redis-compare  redis-benchmark doing the intake's per-event work (EVALSHA of the append script)
  report         combine -out results into the RESULTS.md table
  fsync          time 4 KiB write + fdatasync on a directory's disk
  serve          run the gateway in-process with CPU/mutex/block profiles (for investigation)
  freeport       print a free TCP port on 127.0.0.1

run "sgbench <command> -h" for the flags of one command.`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usageText)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "throughput":
		err = cmdThroughput(ctx, args[1:], stdout, stderr)
	case "latency":
		err = cmdLatency(ctx, args[1:], stdout, stderr)
	case "redis-compare":
		err = cmdRedisCompare(ctx, args[1:], stdout, stderr)
	case "report":
		err = cmdReport(args[1:], stdout, stderr)
	case "serve":
		err = cmdServe(ctx, args[1:], stderr)
	case "fsync":
		err = cmdFsync(args[1:], stdout, stderr)
	case "freeport":
		err = cmdFreePort(stdout)
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usageText)
		return 0
	default:
		fmt.Fprintf(stderr, "sgbench: unknown command %q\n%s\n", args[0], usageText)
		return 2
	}
	if err != nil {
		if err == errUsage {
			return 2
		}
		fmt.Fprintf(stderr, "sgbench %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// cmdFreePort prints a TCP port that was free on 127.0.0.1 a moment ago.
func cmdFreePort(stdout io.Writer) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Fprintln(stdout, ln.Addr().(*net.TCPAddr).Port)
	return nil
}
