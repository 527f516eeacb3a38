// Command chatbench measures the live chat connector (not part of CI):
//
//	chatbench idle    -n 10000   memory per idle visitor connection, against a
//	                             bare gorilla echo server holding as many, in
//	                             the same run (each server is a subprocess)
//	chatbench latency -conns 1000 -rate 1000 -duration 20s
//	                             visitor message → item moved, p50/p99/max, on
//	                             a whole in-process gateway (bolt by default)
//
// Both print a Markdown table row and the raw figures. Run from the
// repository root: go run ./cmd/chatbench idle.
package main

import (
	"flag"
	"fmt"
	"os"
	"syscall"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	raiseFileLimit()
	var err error
	switch os.Args[1] {
	case "idle":
		err = runIdle(os.Args[2:])
	case "serve": // internal: the server subprocess of idle
		err = runServe(os.Args[2:])
	case "latency":
		err = runLatency(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "chatbench:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: chatbench idle|latency [flags]  (see -h of each)")
	flag.PrintDefaults()
	os.Exit(2)
}

// raiseFileLimit lifts the soft limit on open files to the hard one: 10,000
// connections need as many descriptors on each side.
func raiseFileLimit() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}
