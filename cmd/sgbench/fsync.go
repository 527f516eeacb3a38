package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// cmdFsync measures how long the disk under dir takes to make a 4 KiB
// write durable (write + fdatasync, like a bbolt commit of one page), so the
// report can tell the disk's share of bolt's latency: each applied event
// costs the bolt store three commits in a row (append, move, ack).
func cmdFsync(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fsync", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", os.TempDir(), "directory on the disk to probe")
	n := fs.Int("n", 300, "number of write + fdatasync rounds")
	label := fs.String("store", "", "label for the report")
	out := fs.String("out", "", "append the result as a JSON line to this file")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *n < 1 || *n > 100000 {
		return errors.New("-n must be in 1..100000")
	}
	f, err := os.CreateTemp(*dir, "sgbench-fsync-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	page := make([]byte, 4096)
	lat := make([]time.Duration, 0, *n)
	start := time.Now()
	for i := range *n {
		page[0] = byte(i)
		t := time.Now()
		if _, err := f.WriteAt(page, int64(i%64)*4096); err != nil {
			return err
		}
		if err := fdatasync(f); err != nil {
			return err
		}
		lat = append(lat, time.Since(t))
	}
	sortDurations(lat)
	res := Result{Kind: "fsync", Store: *label, At: start.UTC(), Values: map[string]float64{
		"n": float64(*n), "p50_ms": ms(percentile(lat, 50)), "p90_ms": ms(percentile(lat, 90)),
		"p99_ms": ms(percentile(lat, 99)), "max_ms": ms(percentile(lat, 100)),
	}}
	fmt.Fprintf(stdout, "| disk under %s: 4 KiB write + fdatasync p50 / p99 / max | %.2f / %.2f / %.2f ms |\n",
		filepath.Clean(*dir), res.Values["p50_ms"], res.Values["p99_ms"], res.Values["max_ms"])
	return appendResult(*out, res)
}
