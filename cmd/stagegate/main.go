// Command stagegate runs the Stagegate gateway.
//
//	stagegate serve -config FILE   run the gateway (-listen HOST:PORT overrides the config's address)
//	stagegate check -config FILE   validate a config file; print every problem; exit 1 if any
//	stagegate version              print the version
//
// main only parses flags and handles signals; everything else lives in the
// gateway package.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/stagegate/stagegate/config"
	"github.com/stagegate/stagegate/gateway"
	redisstore "github.com/stagegate/stagegate/store/redis"
	"github.com/stagegate/stagegate/validate"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func usage(w io.Writer) {
	fmt.Fprintln(w, `usage: stagegate <command> [flags]

commands:
  serve -config FILE [-listen HOST:PORT] [-log-format auto|text|json] [-log-level LEVEL]
  check -config FILE
  version`)
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return 2
	}
	switch args[0] {
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "stagegate", buildVersion())
		return 0
	case "check":
		return check(args[1:], stdout, stderr)
	case "serve":
		return serve(args[1:], stderr)
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "stagegate: unknown command %q\n", args[0])
		usage(stderr)
		return 2
	}
}

func buildVersion() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return version
}

func load(path string) (*config.Config, error) {
	return config.Load(path, gateway.Kinds, gateway.ActionTypes(), os.LookupEnv)
}

// printConfigErrors prints each problem on its own line, prefixed with the file.
func printConfigErrors(w io.Writer, path string, err error) {
	var errs validate.Errors
	if errors.As(err, &errs) {
		for _, e := range errs {
			fmt.Fprintf(w, "%s: %s\n", path, e.Error())
		}
		return
	}
	fmt.Fprintf(w, "%s: %v\n", path, err)
}

func check(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "configs/stagegate.yaml", "config file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := load(*path)
	if err != nil {
		printConfigErrors(stderr, *path, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok (%s, %s, store %s)\n", *path,
		plural(len(cfg.Pipelines), "pipeline"), plural(len(cfg.Connectors), "connector"), cfg.Store.Driver)
	return 0
}

// plural is "1 pipeline", "2 pipelines", "0 pipelines".
func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func serve(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "configs/stagegate.yaml", "config file")
	format := fs.String("log-format", "", "log format: auto (text on a terminal, else JSON), text or json; overrides the config")
	level := fs.String("log-level", "", "log level: debug, info, warn or error; overrides the config")
	listen := fs.String("listen", "", "HOST:PORT of the HTTP listener; overrides the config's listen (and a public_url the config does not set)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := load(*path)
	if err != nil {
		printConfigErrors(stderr, *path, err)
		return 1
	}
	if *listen != "" {
		if err := cfg.SetListen(*listen); err != nil {
			var errs validate.Errors
			if errors.As(err, &errs) && len(errs) > 0 {
				err = errors.New(errs[0].Message)
			}
			fmt.Fprintf(stderr, "stagegate: -listen: %v\n", err)
			return 2
		}
	}
	if *format != "" {
		cfg.Log.Format = *format
	}
	if *level != "" {
		cfg.Log.Level = *level
	}
	logger, err := newLogger(stderr, cfg.Log)
	if err != nil {
		fmt.Fprintln(stderr, "stagegate:", err)
		return 2
	}
	redisstore.RouteLibraryLogs(logger)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	g, err := gateway.New(ctx, cfg, gateway.Options{Logger: logger, Version: buildVersion(), ConfigPath: *path})
	if err != nil {
		logger.Error("start failed", "err", err)
		return 1
	}
	if err := g.Run(ctx); err != nil {
		logger.Error("stopped with error", "err", err)
		return 1
	}
	return 0
}
