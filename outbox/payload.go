package outbox

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
)

// This file checks event payloads for what Postgres' jsonb cannot store.

// nulEscape is how JSON writes U+0000, which jsonb refuses (SQLSTATE 22P05).
var nulEscape = []byte(`\u0000`)

// findNUL returns the JSON path (payload.a["b c"][2]) of the first string in a
// valid JSON document that holds U+0000, and whether that string is an object
// key; path is "" when there is none. Text like \\u0000 (an escaped backslash)
// is not U+0000.
func findNUL(document []byte) (path string, key bool) {
	if !bytes.Contains(document, nulEscape) {
		return "", false // the common case: no scan
	}
	type level struct {
		array   bool
		index   int
		key     string
		wantKey bool
	}
	var stack []*level
	pathOf := func() string {
		var b strings.Builder
		b.WriteString("payload")
		for _, l := range stack {
			if l.array {
				b.WriteString("[" + strconv.Itoa(l.index) + "]")
			} else {
				b.WriteString(memberPath(l.key))
			}
		}
		return b.String()
	}
	// valueDone moves past a value in the innermost container.
	valueDone := func() {
		if len(stack) == 0 {
			return
		}
		top := stack[len(stack)-1]
		if top.array {
			top.index++
		} else {
			top.wantKey = true
		}
	}
	decoder := json.NewDecoder(bytes.NewReader(document))
	decoder.UseNumber()
	for {
		token, err := decoder.Token()
		if err != nil {
			return "", false
		}
		switch v := token.(type) {
		case json.Delim:
			switch v {
			case '{':
				stack = append(stack, &level{wantKey: true})
			case '[':
				stack = append(stack, &level{array: true})
			default:
				stack = stack[:len(stack)-1]
				valueDone()
			}
		case string:
			if len(stack) > 0 && !stack[len(stack)-1].array && stack[len(stack)-1].wantKey {
				top := stack[len(stack)-1]
				top.key, top.wantKey = v, false
				if strings.IndexByte(v, 0) >= 0 {
					return pathOf(), true
				}
				continue
			}
			if strings.IndexByte(v, 0) >= 0 {
				return pathOf(), false
			}
			valueDone()
		default:
			valueDone()
		}
	}
}

var plainKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// memberPath writes an object member as .name, or ["other key"] when the key is
// not a plain name.
func memberPath(key string) string {
	if plainKey.MatchString(key) {
		return "." + key
	}
	quoted, _ := json.Marshal(key)
	return "[" + string(quoted) + "]"
}
