package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"

	"github.com/stagegate/stagegate/config"
	"github.com/stagegate/stagegate/gateway"
)

// cmdServe runs a gateway in this process exactly as `stagegate serve`
// does (same config loader, same gateway.New and Run), while recording Go
// profiles, so the gateway can be profiled under sgbench's load without
// adding a profiling endpoint to the product. Profiles are written when the
// gateway stops (SIGINT or SIGTERM):
//
//	sgbench serve -config c.yaml -cpuprofile cpu.out -mutexprofile mu.out -blockprofile block.out
//	go tool pprof -top bin/sgbench cpu.out
func cmdServe(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "configs/stagegate.yaml", "config file")
	cpu := fs.String("cpuprofile", "", "write a CPU profile to this file")
	mutex := fs.String("mutexprofile", "", "write a mutex contention profile to this file")
	block := fs.String("blockprofile", "", "write a blocking profile to this file (costs some throughput)")
	heap := fs.String("memprofile", "", "write an allocation profile to this file")
	level := fs.String("log-level", "warn", "log level: debug, info, warn or error")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	cfg, err := config.Load(*path, gateway.Kinds, gateway.ActionTypes(), os.LookupEnv)
	if err != nil {
		return fmt.Errorf("%s: %w", *path, err)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: lvl}))
	if *mutex != "" {
		runtime.SetMutexProfileFraction(5)
	}
	if *block != "" {
		runtime.SetBlockProfileRate(10000) // one sample per 10µs blocked
	}
	if *cpu != "" {
		f, err := os.Create(*cpu)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	g, err := gateway.New(ctx, cfg, gateway.Options{Logger: logger})
	if err != nil {
		return err
	}
	runErr := g.Run(ctx)
	for name, file := range map[string]string{"mutex": *mutex, "block": *block, "allocs": *heap} {
		if file == "" {
			continue
		}
		if err := writeProfile(name, file); err != nil {
			runErr = errors.Join(runErr, err)
		}
	}
	return runErr
}

func writeProfile(name, file string) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
