package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/outboxd/outboxd/outbox"
)

// listLimitDefault is how many items a list command shows without --limit.
const listLimitDefault = 100

// pageFlags are the paging flags of every list command: --limit, 1 to
// outbox.ListLimitMax, and --cursor, the cursor the previous page printed. The
// cursors are the API's (next_cursor), so either can continue the other's listing.
type pageFlags struct {
	limit  int
	cursor string
}

func (p *pageFlags) register(flags *pflag.FlagSet, items string) {
	flags.IntVar(&p.limit, "limit", listLimitDefault, fmt.Sprintf("show at most this many %s, 1 to %d", items, outbox.ListLimitMax))
	flags.StringVar(&p.cursor, "cursor", "", "continue after the previous page, with the cursor it printed")
}

// key checks --limit and returns the key --cursor continues after ("" for the
// first page).
func (p *pageFlags) key() (string, error) {
	if err := outbox.ValidateListLimit(p.limit); err != nil {
		return "", err
	}
	if p.cursor == "" {
		return "", nil
	}
	decoded, err := base64.RawURLEncoding.DecodeString(p.cursor)
	if err != nil || len(decoded) == 0 {
		return "", errors.New("--cursor: not a cursor outboxd printed (use the one after \"--cursor\" in the previous page's last line, or its next_cursor)")
	}
	return string(decoded), nil
}

// int64Key is key for listings whose cursor is a number.
func (p *pageFlags) int64Key() (int64, error) {
	key, err := p.key()
	if err != nil || key == "" {
		return 0, err
	}
	n, err := strconv.ParseInt(key, 10, 64)
	if err != nil || n <= 0 {
		return 0, errors.New("--cursor: not a cursor outboxd printed for this list")
	}
	return n, nil
}

// fetch is how many rows to ask the store for: one more than shown tells
// whether another page follows.
func (p *pageFlags) fetch() int { return p.limit + 1 }

// page is a list command's JSON output, the same shape as the API's lists.
type page[T any] struct {
	Data       []T     `json:"data"`
	NextCursor *string `json:"next_cursor"`
}

// pageOf cuts items (fetched with p.fetch()) to --limit and makes the next cursor
// from the last item kept.
func pageOf[T any](p *pageFlags, items []T, key func(T) string) page[T] {
	result := page[T]{Data: items}
	if result.Data == nil {
		result.Data = []T{}
	}
	if len(items) > p.limit {
		result.Data = items[:p.limit]
		next := base64.RawURLEncoding.EncodeToString([]byte(key(items[p.limit-1])))
		result.NextCursor = &next
	}
	return result
}

// writeJSON prints a page as JSON.
func (pg page[T]) writeJSON(w io.Writer) error {
	return json.NewEncoder(w).Encode(pg)
}

// printPage prints a list command's page: as JSON with asJSON, otherwise as a
// table with one row per item (columns separated by tabs), then how to get the
// next page.
func printPage[T any](a *app, cmd *cobra.Command, pg page[T], asJSON bool, header string, row func(T) string) error {
	if asJSON {
		return pg.writeJSON(a.stdout)
	}
	w := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, header)
	for _, item := range pg.Data {
		fmt.Fprintln(w, row(item))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	printMore(a, cmd, pg)
	return nil
}

// printMore tells, on stderr so that stdout stays a table, how to get the next
// page: the same command line with the new cursor.
func printMore[T any](a *app, cmd *cobra.Command, pg page[T]) {
	if pg.NextCursor == nil {
		return
	}
	words := []string{cmd.CommandPath()}
	cmd.LocalNonPersistentFlags().VisitAll(func(f *pflag.Flag) {
		switch {
		case !f.Changed || f.Name == "cursor":
		case f.Value.Type() == "bool" && f.Value.String() == "true":
			words = append(words, "--"+f.Name)
		case f.Value.Type() == "bool":
			words = append(words, "--"+f.Name+"=false")
		default:
			words = append(words, "--"+f.Name, shellQuote(f.Value.String()))
		}
	})
	words = append(words, "--cursor", *pg.NextCursor)
	fmt.Fprintf(a.stderr, "more: %s\n", strings.Join(words, " "))
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/,=*@+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
