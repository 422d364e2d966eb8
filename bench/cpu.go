package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuMeter measures the CPU time a phase costs, in this process (the daemon, the
// producers and the receiver run in it) and in the Postgres server processes that
// serve the benchmark's database. Throughput on a shared machine moves with
// whatever else runs; CPU time per item moves far less, so it says where the
// work goes and what each part costs.
type cpuMeter struct {
	database string
	self     time.Duration
	start    map[int]time.Duration // server processes' CPU time when the phase began
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat times (100 on Linux).
const clockTicks = 100

func startCPU(database string) *cpuMeter {
	m := &cpuMeter{database: database}
	m.self, m.start = selfCPU(), serverCPU(database)
	return m
}

// cpuUse is the CPU time spent since a meter started.
type cpuUse struct {
	self, server time.Duration
}

func (m *cpuMeter) stop() cpuUse {
	use := cpuUse{self: selfCPU() - m.self}
	for pid, now := range serverCPU(m.database) {
		use.server += max(0, now-m.start[pid]) // a process that started since counts whole
	}
	return use
}

// per returns the use per item in microseconds: this process's and the server's.
func (u cpuUse) per(items int) (selfMicros, serverMicros float64) {
	if items == 0 {
		return 0, 0
	}
	return float64(u.self.Microseconds()) / float64(items), float64(u.server.Microseconds()) / float64(items)
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// serverCPU is the CPU time, by process id, of the Postgres backends connected
// to database, plus the server's background processes (WAL writer,
// checkpointer, autovacuum, …), which work for every database. Processes that
// exit during a phase take their time with them, so phases keep their
// connections open.
func serverCPU(database string) map[int]time.Duration {
	times := map[int]time.Duration{}
	entries, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, path := range entries {
		cmdline, err := os.ReadFile(path)
		if err != nil || !bytes.HasPrefix(cmdline, []byte("postgres: ")) {
			continue
		}
		line := string(bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
		fields := strings.Fields(strings.TrimPrefix(line, "postgres: "))
		// Backends read "postgres: <user> <database> <host> <state>"; background
		// processes read "postgres: 15/main: walwriter" and the like.
		backend := len(fields) >= 3 && !strings.HasSuffix(fields[0], ":")
		if backend && fields[1] != database {
			continue
		}
		if !backend && strings.Contains(line, "autovacuum worker") && !strings.Contains(line, " "+database) {
			continue // vacuuming another database
		}
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
		if used, ok := processCPU(pid); ok {
			times[pid] = used
		}
	}
	return times
}

// processCPU is the CPU time (user and system) process pid has used, from
// /proc/<pid>/stat; false once the process is gone.
func processCPU(pid int) (time.Duration, bool) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// Fields after the command (which is in parentheses): utime is the 14th
	// field of the line, stime the 15th.
	rest := stat[bytes.LastIndexByte(stat, ')')+2:]
	parts := strings.Fields(string(rest))
	if len(parts) < 13 {
		return 0, false
	}
	utime, _ := strconv.ParseInt(parts[11], 10, 64)
	stime, _ := strconv.ParseInt(parts[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / clockTicks, true
}
