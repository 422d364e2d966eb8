package httpapi

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The OpenAPI document and the routes the mux serves are the same set, so the
// document cannot drift from the handlers.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	t.Parallel()

	var doc struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
		Comps   struct {
			Schemas map[string]any `json:"schemas"`
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal(openAPIDocument, &doc))
	require.Equal(t, "3.1.0", doc.OpenAPI)

	var documented, served []string
	for path, methods := range doc.Paths {
		for method, operation := range methods {
			documented = append(documented, strings.ToUpper(method)+" "+path)
			responses, _ := operation["responses"].(map[string]any)
			require.Contains(t, responses, "401", "%s %s documents the missing-token answer", method, path)
			if method != "get" {
				require.Contains(t, responses, "403", "%s %s documents the cross-origin refusal", method, path)
			}
			if _, body := operation["requestBody"]; body {
				for _, status := range []string{"400", "413", "415", "422"} {
					require.Contains(t, responses, status, "%s %s takes a body, so it documents %s", method, path, status)
				}
			}

			// Path parameters in the template are declared.
			params, _ := operation["parameters"].([]any)
			for _, segment := range strings.Split(path, "/") {
				if strings.HasPrefix(segment, "{") {
					name := strings.Trim(segment, "{}")
					found := false
					for _, p := range params {
						if m, _ := p.(map[string]any); m["name"] == name && m["in"] == "path" {
							found = true
						}
					}
					require.True(t, found, "%s %s declares path parameter %s", method, path, name)
				}
			}
		}
	}
	for _, rt := range routes {
		served = append(served, rt.method+" "+rt.path)
	}
	sort.Strings(documented)
	sort.Strings(served)
	require.Equal(t, served, documented)

	// Every schema reference resolves.
	raw := string(openAPIDocument)
	for _, part := range strings.Split(raw, `"$ref": "#/components/schemas/`)[1:] {
		name := part[:strings.Index(part, `"`)]
		require.Contains(t, doc.Comps.Schemas, name)
	}
}
