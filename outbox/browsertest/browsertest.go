// Package browsertest owns the headless Chromium that outboxd's browser tests
// drive through the DevTools protocol (chromedp): one browser per test binary,
// started on first use, and a fresh browser context (own cookies, cache and
// HTTP auth) per test. It never skips: a test that needs a browser fails with
// how to install one when Chromium cannot be found. It is imported only from
// _test.go files, whose package's TestMain must call Run.
package browsertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/chromedp"
)

// EnvChromium names the variable that, when set, is the browser to run.
const EnvChromium = "OUTBOXD_TEST_CHROMIUM"

// candidates are looked up on PATH, in order, when EnvChromium is not set.
var candidates = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"}

// Path returns the browser to run: EnvChromium, else the first candidate on
// PATH.
func Path() (string, error) {
	if path := os.Getenv(EnvChromium); path != "" {
		return path, nil
	}
	for _, name := range candidates {
		if path, err := exec.LookPath(name); err == nil {
			return path, nil
		}
	}
	return "", errors.New("no Chromium found: install it (Debian and Ubuntu: apt-get install -y chromium) or set " + EnvChromium + " to a Chrome or Chromium binary")
}

// shared is the test binary's one browser.
var shared struct {
	mu       sync.Mutex
	running  bool // Run was called and has not returned
	started  bool
	err      error
	browser  context.Context // the first tab's context; its browser is shared
	stop     func()
	dataDir  string
	children sync.WaitGroup
}

// Run runs the tests of m and then stops the browser, if one was started, and
// removes its profile. Call it from TestMain: os.Exit(browsertest.Run(m)).
func Run(m *testing.M) int {
	shared.mu.Lock()
	shared.running = true
	shared.mu.Unlock()
	code := m.Run()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	shared.running = false
	if shared.stop != nil {
		shared.stop()
		_ = os.RemoveAll(shared.dataDir)
	}
	return code
}

// start launches Chromium headless, isolated from the machine (a temporary
// profile, no background networking, no component updates, no sync).
func start() error {
	path, err := Path()
	if err != nil {
		return err
	}
	dataDir, err := os.MkdirTemp("", "outboxd-chromium-")
	if err != nil {
		return err
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.UserDataDir(dataDir),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.WindowSize(1280, 800),
	)
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	// The browser lives as long as the context of the first action, so that
	// context has no deadline of its own; a watchdog stops a start that hangs.
	watchdog := time.AfterFunc(time.Minute, cancelBrowser)
	err = chromedp.Do(browser)
	if !watchdog.Stop() && err == nil {
		err = errors.New("timed out")
	}
	if err != nil {
		cancelBrowser()
		cancelAlloc()
		_ = os.RemoveAll(dataDir)
		return fmt.Errorf("start %s: %w", path, err)
	}
	shared.browser, shared.dataDir = browser, dataDir
	shared.stop = func() {
		shared.children.Wait()
		cancelBrowser()
		cancelAlloc()
	}
	return nil
}

// New returns the context of a new tab, in a browser context of its own, of
// the test binary's shared Chromium (started on first use). The tab closes when
// the test ends; actions on it time out after timeout.
func New(t testing.TB, timeout time.Duration) context.Context {
	t.Helper()
	shared.mu.Lock()
	if !shared.running {
		shared.mu.Unlock()
		t.Fatal("browsertest: call browsertest.Run from the package's TestMain, so the browser is stopped after the tests")
	}
	if !shared.started {
		shared.started = true
		shared.err = start()
	}
	err, browser := shared.err, shared.browser
	if err == nil {
		shared.children.Add(1)
	}
	shared.mu.Unlock()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("browsertest: CI needs a browser for this test (.ci/run installs chromium): %v", err)
		}
		t.Fatalf("browsertest: %v", err)
	}

	tab, closeTab := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	ctx, cancel := context.WithTimeout(tab, timeout)
	t.Cleanup(func() {
		cancel()
		closeTab()
		shared.children.Done()
	})
	return ctx
}

// Challenges records the HTTP authentication challenges a tab answered.
type Challenges struct {
	mu      sync.Mutex
	schemes []string
}

// Schemes lists the scheme of each challenge answered, in order ("basic").
func (c *Challenges) Schemes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.schemes)
}

// AnswerAuthChallenges makes the tab of ctx answer every HTTP authentication
// challenge (a 401 the browser would show its sign-in prompt for) with
// username and password, as a person typing them into the prompt would. It
// uses the DevTools Fetch domain, which then pauses every request of the tab
// until it is let through here.
func AnswerAuthChallenges(t testing.TB, ctx context.Context, username, password string) *Challenges {
	t.Helper()
	challenges := &Challenges{}
	paused := chromedp.Events(ctx, fetch.RequestPaused)
	auth := chromedp.Events(ctx, fetch.AuthRequired)
	_, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{
		Patterns:           []*fetch.RequestPattern{{URLPattern: "*", RequestStage: fetch.RequestStageRequest}},
		HandleAuthRequests: ptr(true),
	})
	if err != nil {
		t.Fatalf("browsertest: enable the Fetch domain: %v", err)
	}
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			_, _ = chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
		}
	}()
	go func() {
		for ev, err := range auth {
			if err != nil {
				return
			}
			challenges.mu.Lock()
			challenges.schemes = append(challenges.schemes, strings.ToLower(ev.AuthChallenge.Scheme))
			challenges.mu.Unlock()
			_, _ = chromedp.Call(ctx, fetch.ContinueWithAuth, fetch.ContinueWithAuthParams{
				RequestID: ev.RequestID,
				AuthChallengeResponse: &fetch.AuthChallengeResponse{
					Response: fetch.AuthChallengeResponseResponseProvideCredentials,
					Username: username, Password: password,
				},
			})
		}
	}()
	return challenges
}

func ptr[T any](v T) *T { return &v }
