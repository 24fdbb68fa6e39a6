package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"text/tabwriter"
	"time"

	"github.com/tachyon-io/tachyon/runtime/ring"
)

func runStat(env *cliEnv, args []string) int {
	fs := newFlags(env, "stat", `Show a ring's identity, producer state, fill and per-subscriber received,
dropped and lag counters, read live from shared memory without registering.
RING is the segment name (as in /dev/shm/RING). With --watch, refresh until
interrupted, like AeronStat. With --list, list every ring in /dev/shm and
whether its publisher is alive. With --reap, remove RING only if its
publisher is dead (a stale segment left by a crash); a live ring, one being
created, and a file that is not a ring are never removed.`)
	watch := fs.Bool("watch", false, "refresh continuously")
	interval := fs.Duration("interval", time.Second, "refresh every `D` (a duration: 500ms, 2s) with --watch")
	reap := fs.Bool("reap", false, "remove RING if its publisher is dead")
	list := fs.Bool("list", false, "list every ring segment and its publisher's state")
	names, code, ok := fs.parse(args)
	if !ok {
		return code
	}
	if *list {
		if len(names) != 0 {
			return fs.usageError("--list takes no RING")
		}
		return listRings(env)
	}
	if len(names) != 1 {
		return fs.usageError("need exactly one RING")
	}
	name := names[0]
	if *reap {
		if err := ring.Remove(name); err != nil {
			env.errorf("stat --reap %s: %v", name, err)
			return exitError
		}
		fmt.Fprintf(env.stdout, "removed stale ring %s\n", name)
		return exitOK
	}
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

// listRings prints one line per ring segment in the shared-memory directory.
func listRings(env *cliEnv) int {
	entries, err := os.ReadDir(ring.ShmDir)
	if err != nil {
		env.errorf("stat --list: %v", err)
		return exitError
	}
	tw := tabwriter.NewWriter(env.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RING\tPUBLISHER\tPID\tAGE\tCAPACITY\tSUBSCRIBERS\tFINGERPRINT")
	for _, e := range entries {
		if !e.Type().IsRegular() || ring.ValidateName(e.Name()) != nil {
			continue
		}
		st, err := ring.Inspect(e.Name())
		if err != nil {
			if !errors.Is(err, ring.ErrCorrupt) && !errors.Is(err, ring.ErrNotReady) && !errors.Is(err, ring.ErrVersion) {
				continue // not a ring: another program's segment
			}
			fmt.Fprintf(tw, "%s\t(unreadable: %v)\t\t\t\t\t\n", e.Name(), err)
			continue
		}
		state := "dead (stale: stat --reap " + st.Name + ")"
		switch {
		case st.Producer.Alive:
			state = "alive"
		case st.Producer.State == "closed":
			state = "closed"
		}
		active := 0
		for _, s := range st.Subscribers {
			if s.State == "active" {
				active++
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%v\t%d\t%d/%d\t%#016x\n", st.Name, state, st.Producer.PID,
			time.Since(st.Created).Round(time.Second), st.Capacity, active, st.MaxSubscribers, st.Fingerprint)
	}
	if err := tw.Flush(); err != nil {
		env.errorf("stat --list: %v", err)
		return exitError
	}
	return exitOK
}
