// Command apidoc writes the API reference, docs/api.md, from the OpenAPI document
// the daemon serves (outbox/httpapi/openapi.json), so that the two cannot drift:
// `make docs` runs it, and its test fails when docs/api.md is not what it makes.
//
//	go run ./outbox/httpapi/apidoc -in outbox/httpapi/openapi.json -out docs/api.md
package main

//go:generate go run . -in ../openapi.json -out ../../../docs/api.md

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

func main() {
	in := flag.String("in", "", "the OpenAPI document (outbox/httpapi/openapi.json)")
	out := flag.String("out", "", "the Markdown file to write (docs/api.md)")
	flag.Parse()
	if err := run(*in, *out); err != nil {
		fmt.Fprintf(os.Stderr, "apidoc: %s\n", err)
		os.Exit(1)
	}
}

func run(in, out string) error {
	if in == "" || out == "" {
		return errors.New("-in and -out are required")
	}
	document, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	markdown, err := render(document)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	return os.WriteFile(out, markdown, 0o644) //nolint:gosec // a documentation file, world-readable by design
}
