package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// daemonMetric reads one unlabelled sample from a daemon's /metrics.
func daemonMetric(addr, name string) (float64, error) {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	scanner := bufio.NewScanner(resp.Body)
	scanner.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for scanner.Scan() {
		if value, ok := strings.CutPrefix(scanner.Text(), name+" "); ok {
			return strconv.ParseFloat(value, 64)
		}
	}
	if err := scanner.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no %s in /metrics", name)
}

// waitReady waits until a daemon answers /readyz with 200: its workers run.
func waitReady(t *testing.T, p *daemonProcess) {
	t.Helper()
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + p.addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 60*time.Second, 20*time.Millisecond, "the daemon did not become ready; its log:\n%s", p.log())
}

// The repro: 200 connections that sent their headers and part of a body,
// and idle keep-alive connections, stayed open for ever, each holding a goroutine
// and a file descriptor. Now the read timeout answers the slow ones 408 and
// closes them, the idle timeout closes the idle ones, and the daemon's goroutines
// and open files come back to where they were.
func TestSlowClientsDoNotPinTheDaemon(t *testing.T) {
	t.Parallel()

	const readTimeout = 2 * time.Second
	b := newProcessBundle(t)
	token := "admin-token-" + randomHex(t) + randomHex(t)
	b.env = append(b.env, "OUTBOXD_API_TOKEN="+token)
	daemon := b.startDaemon(t, "--http-read-timeout", readTimeout.String(), "--http-idle-timeout", readTimeout.String())
	waitReady(t, daemon)
	goroutines, err := daemonMetric(daemon.addr, "go_goroutines")
	require.NoError(t, err)
	files, err := daemonMetric(daemon.addr, "process_open_fds")
	require.NoError(t, err)

	slowBody := fmt.Sprintf("POST /v1/events HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"type\": \"a.b\", ", daemon.addr, token)
	idle := fmt.Sprintf("GET /healthz HTTP/1.1\r\nHost: %s\r\n\r\n", daemon.addr)
	var conns []net.Conn
	for i := range 250 {
		conn, err := net.Dial("tcp", daemon.addr) //nolint:noctx // a raw connection, on purpose
		require.NoError(t, err)
		t.Cleanup(func() { _ = conn.Close() })
		request := slowBody
		if i%5 == 4 {
			request = idle
		}
		_, err = io.WriteString(conn, request)
		require.NoError(t, err)
		conns = append(conns, conn)
	}

	// Each connection is answered (408 for a body that stopped, 200 for the
	// health check) and then closed by the daemon: the read ends in EOF well
	// before the safety deadline.
	var wg sync.WaitGroup
	answers := make([]string, len(conns))
	errs := make([]error, len(conns))
	for i, conn := range conns {
		wg.Go(func() {
			errs[i] = conn.SetReadDeadline(time.Now().Add(readTimeout + 20*time.Second))
			if errs[i] == nil {
				data, err := io.ReadAll(conn)
				answers[i], errs[i] = string(data), err
			}
		})
	}
	wg.Wait()
	for i := range conns {
		require.NoError(t, errs[i], "connection %d was not closed by the daemon", i)
		want := "HTTP/1.1 408 Request Timeout\r\n"
		if i%5 == 4 {
			want = "HTTP/1.1 200 OK\r\n"
		}
		require.True(t, strings.HasPrefix(answers[i], want), "connection %d: %q", i, answers[i])
	}
	require.Contains(t, answers[0], "the body did not arrive within the server's read timeout")

	// The daemon keeps no socket of those connections (its database pool may
	// have grown meanwhile, so all its files are no measure), and its goroutines
	// come back to about what they were.
	var nowGoroutines, nowFiles float64
	var sockets int
	require.Eventually(t, func() bool {
		g, err1 := daemonMetric(daemon.addr, "go_goroutines")
		f, err2 := daemonMetric(daemon.addr, "process_open_fds")
		n, err3 := httpSockets(daemon.cmd.Process.Pid, daemon.addr)
		nowGoroutines, nowFiles, sockets = g, f, n
		return err1 == nil && err2 == nil && err3 == nil && n == 0 && g <= goroutines+20
	}, 20*time.Second, 100*time.Millisecond, "HTTP sockets close and goroutines come back (from %v)", goroutines)
	t.Logf("goroutines %v → %v, open files %v → %v, HTTP sockets %d, after %d slow or idle connections", goroutines, nowGoroutines, files, nowFiles, sockets, len(conns))
}

// httpSockets counts the sockets process pid holds for connections accepted on
// addr (its listener not included), from /proc/<pid>/fd and /proc/net/tcp.
func httpSockets(pid int, addr string) (int, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	portNumber, err := strconv.Atoi(port)
	if err != nil {
		return 0, err
	}
	links, err := filepath.Glob(fmt.Sprintf("/proc/%d/fd/*", pid))
	if err != nil {
		return 0, err
	}
	held := map[string]bool{}
	for _, link := range links {
		target, err := os.Readlink(link)
		if err == nil && strings.HasPrefix(target, "socket:[") {
			held[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")] = true
		}
	}
	table, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return 0, err
	}
	local := fmt.Sprintf(":%04X", portNumber)
	count := 0
	for _, line := range strings.Split(string(table), "\n")[1:] {
		fields := strings.Fields(line)
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
		if len(fields) < 10 || !strings.HasSuffix(fields[1], local) || fields[3] == "0A" { // 0A: listening
			continue
		}
		if held[fields[9]] {
			count++
		}
	}
	return count, nil
}
