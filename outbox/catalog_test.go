package outbox_test

import (
	"bytes"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/outboxd/outboxd/outbox"
)

// The portal's event catalog and docs/events.md are one source: every type of
// the catalog has a section of the docs whose heading names it, its example is
// one of that section's JSON blocks, and every type the docs give a section is
// in the catalog.
func TestEventCatalogMatchesTheDocs(t *testing.T) {
	t.Parallel()

	doc, err := os.ReadFile("../docs/events.md")
	require.NoError(t, err)
	sections := map[string]string{} // type -> its section's text
	var order []string
	parts := regexp.MustCompile(`(?m)^## `).Split(string(doc), -1)
	typePattern := regexp.MustCompile(`^[a-z0-9_]+(\.[a-z0-9_]+)+$`)
	for _, part := range parts[1:] {
		heading, body, _ := strings.Cut(part, "\n")
		for name := range strings.SplitSeq(heading, " / ") {
			name = strings.TrimSpace(name)
			if typePattern.MatchString(name) {
				sections[name] = body
				order = append(order, name)
			}
		}
	}
	compact := func(raw string) string {
		var buf bytes.Buffer
		require.NoError(t, json.Compact(&buf, []byte(raw)), raw)
		return buf.String()
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```")
	catalogued := make([]string, len(outbox.EventCatalog))
	for i, info := range outbox.EventCatalog {
		catalogued[i] = info.Type
		body, ok := sections[info.Type]
		require.True(t, ok, "docs/events.md has no section for %s", info.Type)
		require.NotEmpty(t, info.Description, info.Type)
		require.NoError(t, outbox.ValidateEventTypePattern(info.Type))
		if info.Example == nil {
			continue
		}
		want := compact(string(info.Example))
		var found bool
		for _, m := range blocks.FindAllStringSubmatch(body, -1) {
			found = found || compact(m[1]) == want
		}
		require.True(t, found, "the example of %s is not in its section of docs/events.md", info.Type)
	}
	require.Equal(t, order, catalogued, "the catalog lists the docs' types in the docs' order")
}
