package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

const (
	openAPIPath = "../openapi.json"
	apiDocPath  = "../../../docs/api.md"
)

// TestAPIDocIsCurrent fails when docs/api.md is not what this generator makes
// from the openapi.json the daemon serves: someone changed the API's document
// without regenerating its reference.
func TestAPIDocIsCurrent(t *testing.T) {
	t.Parallel()

	document, err := os.ReadFile(openAPIPath)
	require.NoError(t, err)
	want, err := render(document)
	require.NoError(t, err)
	got, err := os.ReadFile(apiDocPath)
	require.NoError(t, err, "docs/api.md is missing: run `make docs` and commit it")
	if string(got) != string(want) {
		gotLines, wantLines := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
		line := 0
		for line < len(gotLines) && line < len(wantLines) && gotLines[line] == wantLines[line] {
			line++
		}
		first := func(lines []string) string {
			if line < len(lines) {
				return lines[line]
			}
			return "(end of file)"
		}
		t.Fatalf("docs/api.md is not what outbox/httpapi/openapi.json makes: run `make docs` (go generate ./outbox/httpapi/apidoc) and commit docs/api.md.\n"+
			"First difference, line %d:\n  docs/api.md: %s\n  generated:   %s", line+1, first(gotLines), first(wantLines))
	}
}

// TestAPIDocCoversTheDocument checks the reference leaves nothing out: every
// operation, parameter, schema and field of openapi.json appears in it.
func TestAPIDocCoversTheDocument(t *testing.T) {
	t.Parallel()

	document, err := os.ReadFile(openAPIPath)
	require.NoError(t, err)
	markdown, err := render(document)
	require.NoError(t, err)
	out := string(markdown)

	var doc struct {
		Paths      map[string]map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas map[string]map[string]any `json:"schemas"`
		} `json:"components"`
	}
	require.NoError(t, json.Unmarshal(document, &doc))
	require.NotEmpty(t, doc.Paths)
	for path, item := range doc.Paths {
		for method, op := range item {
			require.Contains(t, out, "`"+strings.ToUpper(method)+" "+path+"`", "operation %s %s", method, path)
			if summary, _ := op["summary"].(string); summary != "" {
				require.Contains(t, out, "### "+text(summary)+"\n")
			}
			params, _ := op["parameters"].([]any)
			for _, p := range params {
				name := p.(map[string]any)["name"].(string)
				require.Contains(t, out, "| `"+name+"` |", "parameter %s of %s %s", name, method, path)
			}
			responses, _ := op["responses"].(map[string]any)
			for code := range responses {
				require.Contains(t, out, "| `"+code+"` |", "response %s of %s %s", code, method, path)
			}
		}
	}
	require.NotEmpty(t, doc.Components.Schemas)
	for name, schema := range doc.Components.Schemas {
		require.Contains(t, out, "### "+name+"\n", "schema %s", name)
		var fields []map[string]any
		if props, ok := schema["properties"].(map[string]any); ok {
			fields = append(fields, props)
		}
		if all, ok := schema["allOf"].([]any); ok {
			for _, part := range all {
				if props, ok := part.(map[string]any)["properties"].(map[string]any); ok {
					fields = append(fields, props)
				}
			}
		}
		for _, props := range fields {
			for field := range props {
				require.Contains(t, out, "| `"+field+"` |", "field %s of %s", field, name)
			}
		}
	}
}

func TestRender(t *testing.T) {
	t.Parallel()

	document := `{
	  "openapi": "3.1.0",
	  "info": {"title": "Widgets", "version": "2", "description": "Make <widgets> *fast*."},
	  "security": [{"token": []}],
	  "paths": {
	    "/w/{id}": {
	      "parameters": [{"name": "id", "in": "path", "schema": {"type": "string"}}],
	      "get": {"summary": "Get a widget", "tags": ["widgets"], "operationId": "getWidget",
	        "parameters": [{"name": "fields", "in": "query", "description": "a | b", "schema": {"type": "array", "items": {"type": "string", "enum": ["x", "y"]}}}],
	        "responses": {
	          "404": {"description": "No such widget."},
	          "200": {"description": "The widget.", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Widget"}}}}
	        }},
	      "delete": {"summary": "Delete a widget", "security": [],
	        "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "properties": {"why": {"type": "string", "maxLength": 200}}}}}},
	        "responses": {"204": {"description": "Gone."}}}
	    }
	  },
	  "components": {
	    "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
	    "schemas": {
	      "Widget": {"type": "object", "required": ["id"], "additionalProperties": false, "properties": {
	        "id": {"type": "string"},
	        "size": {"type": ["integer", "null"], "minimum": 1, "maximum": 9, "default": 3},
	        "made_at": {"type": "string", "format": "date-time", "readOnly": true},
	        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
	        "parts": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}}
	      }},
	      "BigWidget": {"allOf": [{"$ref": "#/components/schemas/Widget"}, {"type": "object", "properties": {"big": {"type": "boolean"}}}]}
	    }
	  }
	}`
	out, err := render([]byte(document))
	require.NoError(t, err)
	md := string(out)
	for _, want := range []string{
		header,
		"# Widgets\n\nMake &lt;widgets&gt; \\*fast\\*.\n",
		"- `token`: an HTTP header `Authorization: Bearer <token>`.\n\nEvery operation needs `token` unless it says otherwise.",
		"| `GET` | `/w/{id}` | [Get a widget](#get-a-widget) |\n| `DELETE` | `/w/{id}` | [Delete a widget](#delete-a-widget) |",
		"## Widgets\n\n### Get a widget\n\n`GET /w/{id}` (operation `getWidget`)",
		"| `id` | path | string | yes |  |",
		"| `fields` | query | array of string | no | a \\| b |",
		"| `200` | `application/json`: [Widget](#widget) | The widget. |\n| `404` | none | No such widget. |",
		"## Other\n\n### Delete a widget\n\n`DELETE /w/{id}`\n\nNeeds no credentials.",
		"Request body (required):\n\n- `application/json`: object\n",
		"The request body's fields:\n\n| field | type | required | description |\n|---|---|---|---|\n| `why` | string | no | At most 200 characters. |",
		"### Widget\n\n| field | type | required | description |",
		"| `id` | string | yes |  |",
		"| `size` | integer or null | no | From 1 to 9. Default `3`. |",
		"| `made_at` | string (date-time) | no | Read-only. |",
		"| `labels` | object of string | no |  |",
		"| `parts` | array of object | no |  |\n| `parts[].name` | string | no |  |",
		"Other fields are refused.",
		"### BigWidget\n\nEvery field of [Widget](#widget), and:\n\n| field | type | required | description |\n|---|---|---|---|\n| `big` | boolean | no |  |",
	} {
		require.Contains(t, md, want)
	}

	for _, bad := range []string{`[]`, `{"openapi": "3.1.0"}`, `{"info": {}}`, `{`} {
		_, err := render([]byte(bad))
		require.Error(t, err, bad)
	}
}

func TestRunWritesTheFile(t *testing.T) {
	t.Parallel()

	out := filepath.Join(t.TempDir(), "api.md")
	require.NoError(t, run(openAPIPath, out))
	written, err := os.ReadFile(out)
	require.NoError(t, err)
	require.Contains(t, string(written), "# outboxd API")
	require.ErrorContains(t, run("", out), "-in and -out are required")
	require.Error(t, run("no-such-file.json", out))
}
