package main

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// header opens the generated file.
const header = "<!-- Generated from outbox/httpapi/openapi.json by outbox/httpapi/apidoc: do not edit; change openapi.json and run `make docs`. -->\n"

var methods = []string{"get", "put", "post", "patch", "delete", "head", "options", "trace"}

type operation struct {
	method, path string
	op           *node
	params       []*node
	anchor       string
}

type renderer struct {
	doc     *node
	b       strings.Builder
	used    map[string]int    // heading anchors taken, as GitHub numbers repeats
	schemas map[string]string // schema name -> anchor
}

// render turns an OpenAPI 3 document into Markdown.
func render(document []byte) ([]byte, error) {
	doc, err := parseOrdered(document)
	if err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	if !doc.isObj || doc.get("openapi").str() == "" {
		return nil, errors.New("not an OpenAPI document: no \"openapi\" version")
	}
	paths := doc.get("paths")
	if paths == nil || !paths.isObj || len(paths.keys) == 0 {
		return nil, errors.New("the document has no paths")
	}
	r := &renderer{doc: doc, used: map[string]int{}, schemas: map[string]string{}}

	title := doc.get("info", "title").str()
	if title == "" {
		title = "API"
	}
	r.anchor(title)
	r.anchor("Authentication")
	r.anchor("Operations")

	// Operations, grouped by their first tag: the document's tags in order, then
	// tags it does not declare, then untagged ones.
	groups := map[string][]*operation{}
	var order []string
	if tags := doc.get("tags"); tags != nil {
		for _, tag := range tags.items {
			if name := tag.get("name").str(); name != "" && !slices.Contains(order, name) {
				order = append(order, name)
			}
		}
	}
	for _, path := range paths.keys {
		item := paths.fields[path]
		for _, method := range methods {
			op := item.get(method)
			if op == nil {
				continue
			}
			tag := "other"
			if tags := op.get("tags"); tags != nil && len(tags.items) > 0 {
				tag = tags.items[0].str()
			}
			if !slices.Contains(order, tag) {
				order = append(order, tag)
			}
			var params []*node
			for _, list := range []*node{item.get("parameters"), op.get("parameters")} {
				if list != nil {
					params = append(params, list.items...)
				}
			}
			groups[tag] = append(groups[tag], &operation{method: method, path: path, op: op, params: params})
		}
	}
	order = slices.DeleteFunc(order, func(tag string) bool { return len(groups[tag]) == 0 })
	for _, tag := range order {
		r.anchor(tagTitle(tag))
		for _, o := range groups[tag] {
			o.anchor = r.anchor(o.title())
		}
	}
	schemas := doc.get("components", "schemas")
	if schemas != nil && len(schemas.keys) > 0 {
		r.anchor("Schemas")
		for _, name := range schemas.keys {
			r.schemas[name] = r.anchor(name)
		}
	}

	r.b.WriteString(header)
	fmt.Fprintf(&r.b, "\n# %s\n\n", text(title))
	if description := doc.get("info", "description").str(); description != "" {
		r.paragraph(description)
	}
	fmt.Fprintf(&r.b, "Version %s of the API, as described by the OpenAPI %s document that every daemon serves at `/openapi.json` ([source](../outbox/httpapi/openapi.json)).",
		text(doc.get("info", "version").str()), text(doc.get("openapi").str()))
	if servers := doc.get("servers"); servers != nil && len(servers.items) > 0 {
		var urls []string
		for _, s := range servers.items {
			urls = append(urls, "`"+s.get("url").str()+"`")
		}
		fmt.Fprintf(&r.b, " Paths are relative to %s on the daemon's `--http-addr`.", strings.Join(urls, " or "))
	}
	r.b.WriteString("\n\n")

	r.authentication()

	r.b.WriteString("## Operations\n\n| method | path | what it does |\n|---|---|---|\n")
	for _, tag := range order {
		for _, o := range groups[tag] {
			fmt.Fprintf(&r.b, "| `%s` | `%s` | [%s](#%s) |\n", strings.ToUpper(o.method), cell(o.path), cell(text(o.title())), o.anchor)
		}
	}
	r.b.WriteString("\n")

	for _, tag := range order {
		fmt.Fprintf(&r.b, "## %s\n\n", text(tagTitle(tag)))
		if description := r.tagDescription(tag); description != "" {
			r.paragraph(description)
		}
		for _, o := range groups[tag] {
			r.operation(o)
		}
	}

	if schemas != nil && len(schemas.keys) > 0 {
		r.b.WriteString("## Schemas\n\n")
		for _, name := range schemas.keys {
			r.schema(name, schemas.fields[name])
		}
	}
	return []byte(strings.TrimRight(r.b.String(), "\n") + "\n"), nil
}

func (o *operation) title() string {
	if summary := o.op.get("summary").str(); summary != "" {
		return summary
	}
	if id := o.op.get("operationId").str(); id != "" {
		return id
	}
	return strings.ToUpper(o.method) + " " + o.path
}

func tagTitle(tag string) string {
	if tag == "" {
		return "Other"
	}
	return strings.ToUpper(tag[:1]) + tag[1:]
}

func (r *renderer) tagDescription(tag string) string {
	if tags := r.doc.get("tags"); tags != nil {
		for _, t := range tags.items {
			if t.get("name").str() == tag {
				return t.get("description").str()
			}
		}
	}
	return ""
}

// anchor returns the anchor GitHub gives the next heading with this text.
func (r *renderer) anchor(heading string) string {
	var b strings.Builder
	for _, c := range strings.ToLower(heading) {
		switch {
		case unicode.IsLetter(c) || unicode.IsDigit(c) || c == '-' || c == '_':
			b.WriteRune(c)
		case c == ' ':
			b.WriteRune('-')
		}
	}
	base := b.String()
	n := r.used[base]
	r.used[base] = n + 1
	if n > 0 {
		return fmt.Sprintf("%s-%d", base, n)
	}
	return base
}

func (r *renderer) paragraph(s string) {
	r.b.WriteString(text(s))
	r.b.WriteString("\n\n")
}

func (r *renderer) authentication() {
	r.b.WriteString("## Authentication\n\n")
	schemes := r.doc.get("components", "securitySchemes")
	if schemes == nil || len(schemes.keys) == 0 {
		r.b.WriteString("No operation needs credentials.\n\n")
		return
	}
	for _, name := range schemes.keys {
		s := schemes.fields[name]
		var how string
		switch s.get("type").str() {
		case "http":
			scheme := s.get("scheme").str()
			if strings.EqualFold(scheme, "bearer") {
				how = "an HTTP header `Authorization: Bearer <token>`"
			} else {
				how = fmt.Sprintf("HTTP %s authentication", scheme)
			}
		case "apiKey":
			how = fmt.Sprintf("an API key in the %s `%s`", s.get("in").str(), s.get("name").str())
		default:
			how = s.get("type").str()
		}
		fmt.Fprintf(&r.b, "- `%s`: %s.", name, how)
		if description := s.get("description").str(); description != "" {
			r.b.WriteString(" " + text(description))
		}
		r.b.WriteString("\n")
	}
	if required := requirement(r.doc.get("security")); required != "" {
		fmt.Fprintf(&r.b, "\nEvery operation needs %s unless it says otherwise.\n", required)
	}
	r.b.WriteString("\n")
}

// requirement says what a security requirement list asks for.
func requirement(security *node) string {
	if security == nil {
		return ""
	}
	if len(security.items) == 0 {
		return "no credentials"
	}
	var alternatives []string
	for _, req := range security.items {
		var names []string
		for _, name := range req.keys {
			names = append(names, "`"+name+"`")
		}
		if len(names) == 0 {
			alternatives = append(alternatives, "nothing")
			continue
		}
		alternatives = append(alternatives, strings.Join(names, " and "))
	}
	return strings.Join(alternatives, " or ")
}

func (r *renderer) operation(o *operation) {
	fmt.Fprintf(&r.b, "### %s\n\n`%s %s`", text(o.title()), strings.ToUpper(o.method), o.path)
	if id := o.op.get("operationId").str(); id != "" {
		fmt.Fprintf(&r.b, " (operation `%s`)", id)
	}
	r.b.WriteString("\n\n")
	if o.op.get("deprecated").bool() {
		r.b.WriteString("**Deprecated.**\n\n")
	}
	if description := o.op.get("description").str(); description != "" {
		r.paragraph(description)
	}
	if security := o.op.get("security"); security != nil {
		fmt.Fprintf(&r.b, "Needs %s.\n\n", requirement(security))
	}

	if len(o.params) > 0 {
		r.b.WriteString("Parameters:\n\n| name | in | type | required | description |\n|---|---|---|---|---|\n")
		for _, p := range o.params {
			p = r.resolve(p)
			required := "no"
			if p.get("required").bool() || p.get("in").str() == "path" {
				required = "yes"
			}
			fmt.Fprintf(&r.b, "| `%s` | %s | %s | %s | %s |\n", cell(p.get("name").str()), cell(p.get("in").str()),
				cell(r.typeText(p.get("schema"))), required, cell(describe(p.get("description").str(), p.get("schema"))))
		}
		r.b.WriteString("\n")
	}

	var inline []struct {
		what   string
		schema *node
	}
	if body := r.resolve(o.op.get("requestBody")); body != nil {
		required := "optional"
		if body.get("required").bool() {
			required = "required"
		}
		fmt.Fprintf(&r.b, "Request body (%s):", required)
		if description := body.get("description").str(); description != "" {
			r.b.WriteString(" " + text(description))
		}
		r.b.WriteString("\n\n")
		content := body.get("content")
		if content != nil {
			for _, mediaType := range content.keys {
				schema := content.fields[mediaType].get("schema")
				fmt.Fprintf(&r.b, "- `%s`: %s\n", mediaType, r.typeText(schema))
				if isInlineObject(schema) {
					inline = append(inline, struct {
						what   string
						schema *node
					}{"request body", schema})
				}
			}
		}
		r.b.WriteString("\n")
	}

	if responses := o.op.get("responses"); responses != nil && len(responses.keys) > 0 {
		codes := slices.Clone(responses.keys)
		slices.SortStableFunc(codes, func(a, b string) int { return statusOrder(a) - statusOrder(b) })
		r.b.WriteString("Responses:\n\n| status | body | description |\n|---|---|---|\n")
		for _, code := range codes {
			resp := r.resolve(responses.fields[code])
			var bodies []string
			if content := resp.get("content"); content != nil {
				for _, mediaType := range content.keys {
					schema := content.fields[mediaType].get("schema")
					bodies = append(bodies, fmt.Sprintf("`%s`: %s", mediaType, r.typeText(schema)))
					if isInlineObject(schema) {
						inline = append(inline, struct {
							what   string
							schema *node
						}{"`" + code + "` body", schema})
					}
				}
			}
			body := "none"
			if len(bodies) > 0 {
				body = strings.Join(bodies, "; ")
			}
			fmt.Fprintf(&r.b, "| `%s` | %s | %s |\n", code, cell(body), cell(text(resp.get("description").str())))
		}
		r.b.WriteString("\n")
	}

	for _, in := range inline {
		fmt.Fprintf(&r.b, "The %s's fields:\n\n", in.what)
		r.fields(in.schema)
	}
}

// statusOrder sorts status codes numerically, ranges (2XX) after their codes and
// "default" last.
func statusOrder(code string) int {
	if n, err := strconv.Atoi(code); err == nil {
		return n * 10
	}
	if len(code) == 3 && strings.HasSuffix(strings.ToUpper(code), "XX") {
		if n, err := strconv.Atoi(code[:1]); err == nil {
			return n*1000 + 999
		}
	}
	return 1 << 30
}

func isInlineObject(s *node) bool {
	return s != nil && s.get("$ref") == nil && s.get("properties") != nil
}

// resolve follows a $ref to a component (parameters, request bodies, responses).
func (r *renderer) resolve(n *node) *node {
	for range 10 {
		ref := n.get("$ref").str()
		if !strings.HasPrefix(ref, "#/") {
			return n
		}
		target := r.doc.get(strings.Split(strings.TrimPrefix(ref, "#/"), "/")...)
		if target == nil {
			return n
		}
		n = target
	}
	return n
}

func (r *renderer) schema(name string, s *node) {
	fmt.Fprintf(&r.b, "### %s\n\n", text(name))
	if description := s.get("description").str(); description != "" {
		r.paragraph(description)
	}
	if all := s.get("allOf"); all != nil {
		var refs []string
		var parts []*node
		for _, part := range all.items {
			if part.get("$ref") != nil {
				refs = append(refs, r.typeText(part))
			} else {
				parts = append(parts, part)
			}
		}
		if len(refs) > 0 {
			fmt.Fprintf(&r.b, "Every field of %s", strings.Join(refs, " and "))
			if len(parts) > 0 {
				r.b.WriteString(", and:")
			} else {
				r.b.WriteString(".")
			}
			r.b.WriteString("\n\n")
		}
		for _, part := range parts {
			r.fields(part)
		}
		return
	}
	if s.get("properties") != nil {
		r.fields(s)
		return
	}
	fmt.Fprintf(&r.b, "%s.\n\n", capitalize(r.typeText(s)))
}

// fields writes a table of an object schema's fields, nested objects flattened.
func (r *renderer) fields(s *node) {
	r.b.WriteString("| field | type | required | description |\n|---|---|---|---|\n")
	r.fieldRows(s, "", 0)
	r.b.WriteString("\n")
	if additional := s.get("additionalProperties"); additional != nil && additional.value == false {
		r.b.WriteString("Other fields are refused.\n\n")
	}
}

func (r *renderer) fieldRows(s *node, prefix string, depth int) {
	props := s.get("properties")
	if props == nil {
		return
	}
	var required []string
	if list := s.get("required"); list != nil {
		for _, item := range list.items {
			required = append(required, item.str())
		}
	}
	for _, name := range props.keys {
		prop := props.fields[name]
		yes := "no"
		if slices.Contains(required, name) {
			yes = "yes"
		}
		fmt.Fprintf(&r.b, "| `%s` | %s | %s | %s |\n", cell(prefix+name), cell(r.typeText(prop)), yes, cell(describe(prop.get("description").str(), prop)))
		if depth >= 4 {
			continue
		}
		switch {
		case isInlineObject(prop):
			r.fieldRows(prop, prefix+name+".", depth+1)
		case prop.get("items") != nil && isInlineObject(prop.get("items")):
			r.fieldRows(prop.get("items"), prefix+name+"[].", depth+1)
		}
	}
}

// typeText says what type a schema is, linking component schemas.
func (r *renderer) typeText(s *node) string {
	if s == nil {
		return "any"
	}
	if ref := s.get("$ref").str(); ref != "" {
		name := ref[strings.LastIndex(ref, "/")+1:]
		if anchor, ok := r.schemas[name]; ok {
			return fmt.Sprintf("[%s](#%s)", name, anchor)
		}
		return name
	}
	for _, combinator := range []struct{ key, join string }{{"allOf", " and "}, {"oneOf", " or "}, {"anyOf", " or "}} {
		if list := s.get(combinator.key); list != nil {
			var parts []string
			for _, part := range list.items {
				parts = append(parts, r.typeText(part))
			}
			return strings.Join(parts, combinator.join)
		}
	}
	var types []string
	if t := s.get("type"); t != nil {
		if t.isArr {
			for _, item := range t.items {
				types = append(types, item.str())
			}
		} else {
			types = append(types, t.str())
		}
	}
	if len(types) == 0 {
		if s.get("properties") != nil {
			types = []string{"object"}
		} else {
			return "any"
		}
	}
	var out []string
	for _, t := range types {
		switch t {
		case "array":
			out = append(out, "array of "+r.typeText(s.get("items")))
		case "object":
			if additional := s.get("additionalProperties"); additional != nil && additional.isObj && s.get("properties") == nil {
				out = append(out, "object of "+r.typeText(additional))
			} else {
				out = append(out, "object")
			}
		default:
			if format := s.get("format").str(); format != "" && t != "null" {
				t += " (" + format + ")"
			}
			out = append(out, t)
		}
	}
	return strings.Join(out, " or ")
}

// describe joins a description with what the schema says about allowed values.
func describe(description string, s *node) string {
	parts := []string{}
	if description != "" {
		parts = append(parts, text(description))
	}
	if s == nil {
		return strings.Join(parts, " ")
	}
	if enum := s.get("enum"); enum != nil && len(enum.items) > 0 {
		var values []string
		for _, v := range enum.items {
			values = append(values, "`"+strings.Trim(v.scalar(), `"`)+"`")
		}
		parts = append(parts, "One of "+strings.Join(values, ", ")+".")
	}
	minimum, maximum := s.get("minimum"), s.get("maximum")
	switch {
	case minimum != nil && maximum != nil:
		parts = append(parts, fmt.Sprintf("From %s to %s.", minimum.scalar(), maximum.scalar()))
	case minimum != nil:
		parts = append(parts, fmt.Sprintf("At least %s.", minimum.scalar()))
	case maximum != nil:
		parts = append(parts, fmt.Sprintf("At most %s.", maximum.scalar()))
	}
	minLength, maxLength := s.get("minLength"), s.get("maxLength")
	switch {
	case minLength != nil && maxLength != nil:
		parts = append(parts, fmt.Sprintf("%s to %s characters.", minLength.scalar(), maxLength.scalar()))
	case minLength != nil:
		parts = append(parts, fmt.Sprintf("At least %s characters.", minLength.scalar()))
	case maxLength != nil:
		parts = append(parts, fmt.Sprintf("At most %s characters.", maxLength.scalar()))
	}
	if maxItems := s.get("maxItems"); maxItems != nil {
		parts = append(parts, fmt.Sprintf("At most %s items.", maxItems.scalar()))
	}
	if pattern := s.get("pattern").str(); pattern != "" {
		parts = append(parts, "Matches `"+pattern+"`.")
	}
	if def := s.get("default"); def != nil {
		parts = append(parts, "Default `"+def.scalar()+"`.")
	}
	if s.get("readOnly").bool() {
		parts = append(parts, "Read-only.")
	}
	if s.get("writeOnly").bool() {
		parts = append(parts, "Write-only: never returned.")
	}
	if s.get("deprecated").bool() {
		parts = append(parts, "Deprecated.")
	}
	return strings.Join(parts, " ")
}

// text escapes prose for Markdown, leaving `code spans` as they are.
func text(s string) string {
	var b strings.Builder
	for i, part := range strings.Split(s, "`") {
		if i%2 == 1 {
			b.WriteString("`" + part + "`")
			continue
		}
		for _, c := range part {
			switch c {
			case '\\', '*', '_', '[', ']':
				b.WriteRune('\\')
				b.WriteRune(c)
			case '<':
				b.WriteString("&lt;")
			case '>':
				b.WriteString("&gt;")
			default:
				b.WriteRune(c)
			}
		}
	}
	return b.String()
}

// cell makes text fit in one table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.Join(strings.Fields(s), " ")
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
