package main

import (
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/tachyon-io/tachyon/runtime/ring"
)

func runStat(env *cliEnv, args []string) int {
	fs := newFlags(env, "stat", `Show a ring's identity, producer state, fill and per-subscriber received,
dropped and lag counters, read live from shared memory without registering.
RING is the segment name (as in /dev/shm/RING). With --watch, refresh until
interrupted, like AeronStat.`)
	watch := fs.Bool("watch", false, "refresh continuously")
	interval := fs.Duration("interval", time.Second, "refresh `period` with --watch")
	names, code, ok := parseFlags(env, fs, args)
	if !ok {
		return code
	}
	if len(names) != 1 {
		fs.Usage()
		return exitUsage
	}
	name := names[0]
	show := func() bool {
		st, err := ring.Inspect(name)
		if err != nil {
			env.errorf("stat %s: %v", name, err)
			return false
		}
		if err := ring.WriteStats(env.stdout, st); err != nil {
			env.errorf("stat %s: %v", name, err)
			return false
		}
		return true
	}
	if !*watch {
		if !show() {
			return exitError
		}
		return exitOK
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt)
	defer signal.Stop(stop)
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for {
		fmt.Fprint(env.stdout, "\033[H\033[2J") // clear the terminal
		fmt.Fprintf(env.stdout, "%s  (every %v, Ctrl-C to stop)\n\n", time.Now().Format(time.TimeOnly), *interval)
		if !show() {
			return exitError
		}
		select {
		case <-stop:
			return exitOK
		case <-tick.C:
		}
	}
}
