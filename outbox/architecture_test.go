package outbox_test

import (
	"bytes"
	"encoding/json"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const module = "github.com/outboxd/outboxd"

type goPackage struct {
	ImportPath string
	Doc        string
	Name       string
	Imports    []string // non-test imports
	Deps       []string // every package it links in, transitively
}

// listPackages asks the go tool about every package of the module.
func listPackages(t *testing.T) []goPackage {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", module+"/...").Output()
	require.NoError(t, err)
	var pkgs []goPackage
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p goPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else {
			require.NoError(t, err)
		}
		pkgs = append(pkgs, p)
	}
	require.NotEmpty(t, pkgs)
	return pkgs
}

// TestImportsPointOneWay enforces the layout: cmd/outboxd → (outbox/httpapi, jobs)
// → outbox → outbox/internal. The outbox package must stay cheap for producers to
// import, and httpapi must not reach into jobs.
func TestImportsPointOneWay(t *testing.T) {
	t.Parallel()

	forbidden := map[string][]string{
		module + "/outbox": {
			"github.com/riverqueue/", "github.com/spf13/cobra", "github.com/golang-migrate/",
			"github.com/prometheus/", "riverqueue.com/", "github.com/redis/",
			module + "/jobs", module + "/migrations", module + "/cmd/", module + "/outbox/httpapi",
		},
		module + "/outbox/httpapi": {module + "/jobs", module + "/cmd/", "github.com/spf13/cobra"},
		module + "/jobs":           {module + "/cmd/", module + "/outbox/httpapi", "github.com/spf13/cobra"},
		module + "/migrations":     {module + "/jobs", module + "/cmd/", module + "/outbox/httpapi"},
	}
	pkgs := listPackages(t)
	for _, p := range pkgs {
		for _, prefix := range forbidden[p.ImportPath] {
			for _, dep := range p.Deps {
				require.False(t, strings.HasPrefix(dep, prefix), "%s must not depend on %s (it links in %s)", p.ImportPath, prefix, dep)
			}
		}
		for _, imp := range p.Imports {
			require.NotEqual(t, module+"/cmd/outboxd", imp, "%s imports the command", p.ImportPath)
			require.False(t, imp == module+"/outbox/outboxtest" && p.ImportPath != module+"/outbox/outboxtest",
				"%s imports the test harness outside its tests", p.ImportPath)
			require.False(t, imp == module+"/outbox/browsertest", "%s imports the browser harness outside its tests", p.ImportPath)
			require.False(t, strings.HasPrefix(imp, module+"/outbox/internal") && !strings.HasPrefix(p.ImportPath, module+"/outbox"),
				"%s reaches into outbox/internal", p.ImportPath)
		}
	}

	// The daemon's binary carries no test-only code.
	for _, p := range pkgs {
		if p.ImportPath == module+"/cmd/outboxd" {
			require.False(t, slices.Contains(p.Deps, "testing"), "outboxd links in the testing package")
			require.False(t, slices.Contains(p.Deps, "github.com/stretchr/testify/require"), "outboxd links in testify")
			require.False(t, slices.Contains(p.Deps, "github.com/chromedp/chromedp"), "outboxd links in the browser driver")
		}
	}
}

// TestEveryPackageSaysWhatItOwns requires a package doc comment everywhere.
func TestEveryPackageSaysWhatItOwns(t *testing.T) {
	t.Parallel()

	for _, p := range listPackages(t) {
		if strings.HasSuffix(p.ImportPath, "/internal/dbsqlc") {
			continue // generated
		}
		require.NotEmpty(t, strings.TrimSpace(p.Doc), "package %s has no doc comment", p.ImportPath)
		banned := []string{"util", "utils", "common", "helpers", "misc"}
		require.False(t, slices.Contains(banned, p.Name), "package %s is a bucket name", p.ImportPath)
	}
}
