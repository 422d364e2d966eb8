package migrations

import (
	"io/fs"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Every reference to the default schema in the embedded SQL must be a qualifier
// ("outbox.name"), because only qualifiers are rewritten for --schema. A bare
// "outbox" (CREATE SCHEMA outbox, SET search_path TO outbox) would reach into the
// default schema from every other installation.
func TestFilesQualifyEveryReference(t *testing.T) {
	t.Parallel()

	comment := regexp.MustCompile(`--[^\n]*`)
	bare := regexp.MustCompile(`\boutbox\b([^.]|$)`)
	names, err := fs.Glob(files, "*.sql")
	require.NoError(t, err)
	require.NotEmpty(t, names)
	for _, name := range names {
		text, err := fs.ReadFile(files, name)
		require.NoError(t, err)
		for i, line := range strings.Split(string(text), "\n") {
			code := comment.ReplaceAllString(line, "")
			require.Falsef(t, bare.MatchString(code), "%s:%d names the default schema without a qualifier: %s", name, i+1, line)
		}
	}
}
