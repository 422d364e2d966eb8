package main

// This file runs the real daemon, `outboxd run`, as child processes for the soak
// and daemons scenarios: their memory is then the daemon's own (VmRSS in
// /proc/<pid>/status), and a SIGKILL kills exactly one daemon.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/outboxd/outboxd/outbox"
	"github.com/outboxd/outboxd/outbox/secretbox"
)

// daemonBuild is a freshly built outboxd binary in a temporary directory.
type daemonBuild struct {
	dir string
	bin string
}

// buildDaemon builds ./cmd/outboxd (the module's, wherever bench runs from).
func buildDaemon(ctx context.Context) (*daemonBuild, error) {
	dir, err := os.MkdirTemp("", "outboxd-bench-")
	if err != nil {
		return nil, err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(dir, "outboxd")
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, "github.com/outboxd/outboxd/cmd/outboxd")
	out, err := cmd.CombinedOutput()
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("build outboxd: %w\n%s", err, out)
	}
	return &daemonBuild{dir: dir, bin: bin}, nil
}

func (b *daemonBuild) remove() { _ = os.RemoveAll(b.dir) }

// procEnv is a fresh schema whose subscriptions are sealed with a key that
// daemon processes are given.
type procEnv struct {
	*benchEnv
	databaseURL string
	key         []byte
}

// newProcEnv replaces the schema's store with one whose key is known, so that
// daemon processes can read the subscriptions' secrets.
func newProcEnv(env *benchEnv, databaseURL string) (*procEnv, error) {
	key := make([]byte, secretbox.KeySize)
	_, _ = rand.Read(key)
	boxKey, err := secretbox.NewKey(key)
	if err != nil {
		return nil, err
	}
	store, err := outbox.NewStore(env.pool, &outbox.StoreConfig{Schema: env.schema, Keyring: secretbox.NewKeyring(boxKey), Guard: loopbackGuard()})
	if err != nil {
		return nil, err
	}
	return &procEnv{benchEnv: &benchEnv{pool: env.pool, schema: env.schema, store: store}, databaseURL: databaseURL, key: key}, nil
}

// daemonProc is one `outboxd run` child process.
type daemonProc struct {
	name    string
	addr    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{}
	waitErr error
}

// daemonOpts vary a daemon process.
type daemonOpts struct {
	// databaseURL replaces the environment's (a pooler's, say).
	databaseURL string
	// env adds KEY=value pairs.
	env []string
	// args are extra flags of `outboxd run`.
	args []string
}

// startDaemonProc starts `outboxd run` on env's schema, reaching loopback
// receivers, and waits until it answers /readyz.
func startDaemonProc(ctx context.Context, build *daemonBuild, env *procEnv, name string, opts *daemonOpts) (*daemonProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	logPath := filepath.Join(build.dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	args := append([]string{"run", "--http-addr", addr, "--allow-private-targets", "127.0.0.0/8"}, opts.args...)
	cmd := exec.Command(build.bin, args...) //nolint:gosec // our own build
	cmd.Env = append(os.Environ(),
		"DATABASE_URL="+cmpOr(opts.databaseURL, env.databaseURL),
		"OUTBOXD_SCHEMA="+env.schema,
		"OUTBOXD_ENCRYPTION_KEY="+base64.StdEncoding.EncodeToString(env.key),
		"OUTBOXD_LOG_LEVEL=info",
	)
	cmd.Env = append(cmd.Env, opts.env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &daemonProc{name: name, addr: addr, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	if err := p.waitReady(ctx, 30*time.Second); err != nil {
		p.kill()
		return nil, fmt.Errorf("%s: %w\n%s", name, err, p.logTail(20))
	}
	return p, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil //nolint:forcetypeassert // a TCP listener
}

func (p *daemonProc) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("exited: %v", p.waitErr)
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+"/readyz", nil)
		if resp, err := client.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready within %s", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond): // polling a process that is starting
		}
	}
}

func (p *daemonProc) pid() int { return p.cmd.Process.Pid }

// rssBytes is the process's resident set (VmRSS), or 0 once it has exited.
func (p *daemonProc) rssBytes() int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.pid()))
	if err != nil {
		return 0
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		if rest, ok := strings.CutPrefix(scanner.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb << 10
		}
	}
	return 0
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *daemonProc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// stop sends SIGTERM and waits up to a minute for a clean exit.
func (p *daemonProc) stop() error {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		if p.waitErr != nil {
			return fmt.Errorf("%s exited: %w\n%s", p.name, p.waitErr, p.logTail(20))
		}
		return nil
	case <-time.After(time.Minute):
		p.kill()
		return errors.New(p.name + " did not stop within a minute of SIGTERM")
	}
}

// logLines returns the lines of the daemon's log at level, or at WARN and above
// when level is "WARN+".
func (p *daemonProc) logLines(levels ...string) []string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		for _, level := range levels {
			if strings.Contains(line, "level="+level) {
				out = append(out, line)
				break
			}
		}
	}
	return out
}

func (p *daemonProc) logTail(n int) string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
